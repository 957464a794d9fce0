// Turns decoded cluster objects into the mesh core's input, collecting what was rejected.
import type { MeshInput } from '../mesh/types.js';
import type { MeshNode, MeshPeer } from '../model/mesh.js';
import { type NodeDecodeOptions, decodeNode } from './node.js';
import { decodePeer } from './peer.js';
import { InvalidObjectError, type LocatedProblem, locatedProblem } from './problem.js';
import type { SourceObject } from './source.js';

export interface DecodedMeshInput extends MeshInput {
  readonly problems: readonly LocatedProblem[];
}

export function decodeMeshInput(objects: Iterable<SourceObject>, opts: NodeDecodeOptions): DecodedMeshInput {
  const nodes: MeshNode[] = [];
  const peers: MeshPeer[] = [];
  const problems: LocatedProblem[] = [];
  for (const { kind, object, where } of objects) {
    try {
      if (kind === 'Node') {
        const decoded = decodeNode(object, opts);
        nodes.push(decoded.node);
        problems.push(...decoded.problems.map((p) => locatedProblem(p, where)));
      } else if (kind === 'Peer') {
        peers.push(decodePeer(object));
      }
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      problems.push(locatedProblem(err.problem, where));
    }
  }
  return { nodes, peers, problems };
}
