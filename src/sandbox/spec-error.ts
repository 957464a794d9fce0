// The one error of a sandbox spec that cannot be built: what is wrong, and where.
export class SandboxSpecError extends Error {
  override readonly name = 'SandboxSpecError';
}
