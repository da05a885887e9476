// The only paths the driver mounts, writes, reads, unmounts or removes: kubelet's folder
// for one CSI volume of one pod on this node. Anything else in a request is refused
// before the driver touches the file system (SECURITY.md).
import { lstatSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { InvalidRequestError } from '../errors.js';

export interface VolumePath {
  podUid: string;
  /** The pod's volume name (`spec.volumes[].name`). */
  volume: string;
}

// Pod UIDs are UUIDs; volume names are DNS labels (the API server validates both).
const POD_UID = /^[0-9a-fA-F-]{1,64}$/;
const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function expectedShape(kubeletRoot: string): string {
  return `${kubeletRoot}/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount`;
}

/** The pod and volume a target path belongs to, or an error naming the expected shape. */
export function parseTargetPath(kubeletRoot: string, target: string, rpc: string): VolumePath {
  const refuse = (why: string) =>
    new InvalidRequestError(
      `${rpc}: target_path ${JSON.stringify(target)} ${why}; it must be ${expectedShape(kubeletRoot)}`,
    );
  if (normalize(target) !== target || target.endsWith('/')) throw refuse('is not a normalized absolute path');
  const prefix = `${kubeletRoot}/pods/`;
  if (!target.startsWith(prefix)) throw refuse(`is outside the kubelet root ${kubeletRoot}`);
  const parts = target.slice(prefix.length).split('/');
  const [podUid, volumes, plugin, volume, mount] = parts;
  if (parts.length !== 5 || volumes !== 'volumes' || plugin !== 'kubernetes.io~csi' || mount !== 'mount') {
    throw refuse('is not the mount folder of a CSI volume');
  }
  if (!POD_UID.test(podUid)) throw refuse(`has ${JSON.stringify(podUid)} where the pod uid belongs`);
  if (!VOLUME_NAME.test(volume)) throw refuse(`has ${JSON.stringify(volume)} where the volume name belongs`);
  return { podUid, volume };
}

/**
 * Every folder from `<root>/pods` down to the target is a real folder, not a symlink,
 * so no operation on the target can be led elsewhere. Returns false when a folder is
 * missing (nothing there to touch).
 */
export function realFoldersUpTo(kubeletRoot: string, target: string, rpc: string): boolean {
  const parts = target.slice(kubeletRoot.length + 1).split('/');
  let path = kubeletRoot;
  for (const part of parts) {
    path = join(path, part);
    // Not throwing: on a first publish the last folder does not exist yet.
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return false;
    if (!st.isDirectory()) {
      throw new InvalidRequestError(
        `${rpc}: ${path} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}; the driver follows no link out of ${expectedShape(kubeletRoot)}`,
      );
    }
  }
  return true;
}
