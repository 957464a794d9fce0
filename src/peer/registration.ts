// `wirelane connect`'s Peer object in the cluster: created when missing, adopted when it is this
// host's from an earlier run (same public key), refused when another host holds the name; removed
// on exit only when it is this host's. Every call is bounded: a hung API server fails the step.
import { ApiException, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { equalCidr } from '../model/ip.js';
import { boundedApiCall as bounded } from '../sources/kubernetes/api-call.js';
import type { KubeObject } from '../sources/objects.js';
import { PEER_GROUP, PEER_PLURAL, PEER_VERSION, type PeerRegistration, decodePeer, peerObject } from '../sources/peer.js';

export class PeerRegistrationError extends Error {
  override readonly name = 'PeerRegistrationError';
}

/** What register() did: `adopted` when the object was there from an earlier run with this key. */
export type RegisterOutcome = 'created' | 'adopted' | 'updated';

const PATH = { group: PEER_GROUP, version: PEER_VERSION, plural: PEER_PLURAL };

export class PeerRegistry {
  private readonly api: CustomObjectsApi;

  constructor(kubeconfig: KubeConfig) {
    this.api = kubeconfig.makeApiClient(CustomObjectsApi);
  }

  async register(r: PeerRegistration): Promise<RegisterOutcome> {
    const wanted = peerObject(r);
    try {
      await bounded(this.api.createClusterCustomObject({ ...PATH, body: wanted }), `creating Peer ${r.name}`);
      return 'created';
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
    }
    const current = (await bounded(this.api.getClusterCustomObject({ ...PATH, name: r.name }), `reading Peer ${r.name}`)) as KubeObject;
    const decoded = (() => {
      try {
        return decodePeer(current);
      } catch {
        return undefined;
      }
    })();
    // Only this host's key proves the object is ours to change (and later to delete).
    if (decoded?.publicKey !== r.publicKey) {
      throw new PeerRegistrationError(
        `Peer "${r.name}" already exists with another public key: another host is registered under this name (choose another name, or remove it: kubectl delete peers.${PEER_GROUP} ${r.name})`,
      );
    }
    const same =
      decoded.persistentKeepalive === r.persistentKeepalive &&
      decoded.allowedIPs.length === r.allowedIPs.length &&
      decoded.allowedIPs.every((c, i) => equalCidr(c, r.allowedIPs[i] as typeof c));
    if (same) return 'adopted';
    // A merge patch replaces lists whole; null removes a keepalive no longer wanted.
    const spec = { ...wanted.spec, persistentKeepalive: r.persistentKeepalive > 0 ? r.persistentKeepalive : null };
    await bounded(
      this.api.patchClusterCustomObject({ ...PATH, name: r.name, body: { spec } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      `updating Peer ${r.name}`,
    );
    return 'updated';
  }

  /** Deletes the Peer if it still carries this host's key; false when it was already gone. */
  async unregister(r: PeerRegistration): Promise<boolean> {
    let current: KubeObject;
    try {
      current = (await bounded(this.api.getClusterCustomObject({ ...PATH, name: r.name }), `reading Peer ${r.name}`)) as KubeObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return false;
      throw err;
    }
    const spec = current.spec as { publicKey?: unknown } | undefined;
    if (spec?.publicKey !== r.publicKey) throw new PeerRegistrationError(`Peer "${r.name}" now carries another public key: left in place`);
    try {
      await bounded(this.api.deleteClusterCustomObject({ ...PATH, name: r.name }), `deleting Peer ${r.name}`);
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return false;
      throw err;
    }
    return true;
  }
}

