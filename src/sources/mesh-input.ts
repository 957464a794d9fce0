// Turns decoded cluster objects into the mesh core's input, collecting what was rejected.
import type { MeshInput } from '../mesh/types.js';
import type { MeshNode, MeshPeer } from '../model/mesh.js';
import { DecodeCache } from './decode-cache.js';
import { type NodeDecodeOptions, decodeNode } from './node.js';
import { decodePeer } from './peer.js';
import { type LocatedProblem, locatedProblem } from './problem.js';
import type { SourceObject } from './source.js';

export interface DecodedMeshInput extends MeshInput {
  readonly problems: readonly LocatedProblem[];
}

/** Decodes Nodes and Peers, each object once for as long as the decoder is kept (the agent: for good). */
export class MeshInputDecoder {
  readonly #nodes = new DecodeCache<MeshNode>();
  readonly #peers = new DecodeCache<MeshPeer>();

  constructor(private readonly opts: NodeDecodeOptions) {}

  /** A Node alone, e.g. for its pod CIDRs; undefined when it cannot be used at all. */
  node(object: SourceObject['object']): MeshNode | undefined {
    return this.#nodes.get(object, this.#decodeNode).value;
  }

  decode(objects: Iterable<SourceObject>): DecodedMeshInput {
    const nodes: MeshNode[] = [];
    const peers: MeshPeer[] = [];
    const problems: LocatedProblem[] = [];
    for (const o of objects) {
      const { kind, object } = o;
      const decoded = kind === 'Node' ? this.#nodes.get(object, this.#decodeNode) : kind === 'Peer' ? this.#peers.get(object, decodePeer) : undefined;
      if (decoded === undefined) continue;
      // The place only for a problem: a file object spells it out when asked (cluster-file.ts).
      for (const p of decoded.problems) problems.push(locatedProblem(p, o.where));
      if (decoded.value === undefined) continue;
      if (kind === 'Node') nodes.push(decoded.value as MeshNode);
      else peers.push(decoded.value as MeshPeer);
    }
    return { nodes, peers, problems };
  }

  readonly #decodeNode = (object: SourceObject['object'], onProblem: (p: LocatedProblem) => void): MeshNode => {
    const decoded = decodeNode(object, this.opts);
    decoded.problems.forEach(onProblem);
    return decoded.node;
  };
}

export function decodeMeshInput(objects: Iterable<SourceObject>, opts: NodeDecodeOptions): DecodedMeshInput {
  return new MeshInputDecoder(opts).decode(objects);
}
