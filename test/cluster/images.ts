// Images for the suite without an engine or a registry: buildah storage in the tools cache
// (test/cluster/base-image.sh), the driver image built from the Dockerfile as it stands, and
// archives of them for containerd.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');
export const DRIVER_IMAGE = 'localhost/cce-secrets-manager:test';
const SOURCE_LABEL = 'cce.test.source';

export interface ImageTools {
  /** buildah's storage flags (--root, --runroot, --storage-driver). */
  storage: string[];
  /** The busybox image: the pause image of a real node and the app image of its pods. */
  busybox: string;
  buildah(...args: string[]): Promise<string>;
}

/** The storage and the base images, assembled on first use and kept in the tools cache. */
export async function imageTools(): Promise<ImageTools> {
  const { stdout } = await run('bash', [join(repo, 'test/cluster/base-image.sh')], { maxBuffer: 16 << 20 });
  const [flags, busybox] = stdout.trim().split('\n');
  const storage = flags.split(' ');
  const buildah = async (...args: string[]) =>
    (await run('buildah', [...storage, ...args], { maxBuffer: 64 << 20 })).stdout;
  return { storage, busybox, buildah };
}

/** What the Dockerfile copies from the repository, hashed: the image is rebuilt when it changes. */
function sourceHash(): string {
  const hash = createHash('sha256');
  const add = (path: string) => {
    if (statSync(path).isDirectory()) for (const entry of readdirSync(path).sort()) add(join(path, entry));
    else hash.update(path.slice(repo.length)).update('\0').update(readFileSync(path)).update('\0');
  };
  for (const path of ['Dockerfile', 'package.json', 'package-lock.json', 'scripts', 'src', 'csi-proto']) {
    add(join(repo, path));
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * The driver image, built with `buildah bud` from the Dockerfile as it stands unless the image
 * in storage was built from the same sources (the image and real-node tests share one build).
 */
export async function driverImage(tools: ImageTools): Promise<string> {
  const source = sourceHash();
  const built = await tools
    .buildah('inspect', '--type', 'image', '--format', `{{index .OCIv1.Config.Labels "${SOURCE_LABEL}"}}`, DRIVER_IMAGE)
    .catch(() => '');
  if (built.trim() === source) return DRIVER_IMAGE;
  // Behind a TLS-inspecting proxy (this machine), npm in the build needs its CA: the Dockerfile's "ca" secret.
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  const secret = ca && existsSync(ca) ? ['--secret', `id=ca,src=${ca}`] : [];
  await tools.buildah(
    'bud',
    '--pull=never',
    '--network',
    'host',
    '--layers=false',
    ...secret,
    '--label',
    `${SOURCE_LABEL}=${source}`,
    '-t',
    DRIVER_IMAGE,
    repo,
  );
  // The previous build, now untagged (vfs keeps a full copy of every layer).
  await tools.buildah('rmi', '--prune').catch(() => undefined);
  return DRIVER_IMAGE;
}

/** Writes `image` as a docker-archive that `ctr images import` names as `image`. */
export async function exportImage(tools: ImageTools, image: string, file: string): Promise<void> {
  await tools.buildah('push', '--quiet', image, `docker-archive:${file}:${image}`);
}
