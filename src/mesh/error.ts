// The one error the mesh core throws: the topology cannot be computed from this input.

/** Names the object and field at fault, e.g. `Node "a": not ready: no endpoint`. */
export class MeshError extends Error {
  override readonly name = 'MeshError';
}
