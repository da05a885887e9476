// `cce-secrets-manager mount`: the checks, fetch and atomic write of NodePublishVolume
// for one SPC into a folder, without Kubernetes, printing what it did or the exact
// error a pod would get. For trying an SPC before deploying it.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { status } from '@grpc/grpc-js';
import { parse as parseYaml, stringify } from 'yaml';
import { CSMS_FLAGS, csmsSettings, VOLUME_FLAGS, volumeLimits } from '../config.js';
import { desiredSecret } from '../crds/secret-objects.js';
import { ALLOW_LIST_ANNOTATION, type SecretProviderClass } from '../crds/types.js';
import { writeAtomically } from '../driver/atomic-writer.js';
import { toServiceError } from '../grpc/status.js';
import { buildVolumeContent } from '../provider/volume-content.js';
import { TmpfsMounter, tmpfsSizeFor } from '../driver/mounter.js';
import { desiredSpcps } from '../driver/spcps.js';
import { checkVolume } from '../driver/volume-plan.js';
import type { PublishRequest } from '../driver/volume-request.js';
import { errorMessage } from '../errors.js';
import { ConfigError, flagHelp, parseFlags, text, type FlagValues } from '../flags.js';
import { setUpCsms } from '../provider/csms-setup.js';
import type { SecretObject } from '../crds/objects.js';

const MOUNT_FLAGS = {
  spc: { name: 'spc', metavar: 'FILE', help: 'SecretProviderClass manifest (YAML)', parse: text() },
  serviceAccount: {
    name: 'service-account',
    metavar: 'FILE',
    help: `ServiceAccount manifest whose ${ALLOW_LIST_ANNOTATION} annotation applies`,
    parse: text(),
  },
  allow: {
    name: 'allow',
    metavar: 'LIST',
    help: 'the allow-list as comma-separated secret names, instead',
    parse: text(),
  },
  target: { name: 'target', metavar: 'DIR', help: 'folder for the files (created if missing)', parse: text() },
  tmpfs: {
    name: 'tmpfs',
    switch: true,
    help: 'mount a tmpfs at --target first, as the driver does (root only)',
    parse: Boolean,
  },
  dryRun: { name: 'dry-run', switch: true, help: 'check only: no CSMS request, nothing written', parse: Boolean },
  namespace: {
    name: 'namespace',
    metavar: 'NS',
    help: 'the pod\'s namespace (default: the SPC\'s, else "default")',
    parse: text(),
  },
  pod: {
    name: 'pod',
    metavar: 'NAME',
    default: 'mount-cli',
    help: "the pod's name, for the printed SPCPS",
    parse: text(),
  },
};

const MOUNT_TABLE = { ...MOUNT_FLAGS, ...VOLUME_FLAGS, ...CSMS_FLAGS };
type MountFlags = FlagValues<typeof MOUNT_TABLE>;

export const MOUNT_HELP = `Usage: cce-secrets-manager mount --spc FILE --target DIR (--service-account FILE | --allow LIST) [flags]

Runs what NodePublishVolume runs for one SecretProviderClass (parse and check the
objects, check the ServiceAccount allow-list, fetch from CSMS, write the files
atomically) into a folder, and prints the SPCPS and Secrets a pod would get, or the
exact error the pod would see. No Kubernetes needed.

Flags:
${flagHelp(MOUNT_TABLE)}

Credentials: HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK (/ HUAWEICLOUD_SDK_SECURITY_TOKEN),
else the node agency through the ECS metadata service.
`;

interface Manifest {
  kind?: string;
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> };
}

function readManifest(path: string, kind: string): Manifest {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: ${errorMessage(err).split('\n')[0]}`, { cause: err });
  }
  if (!doc || (doc as Manifest).kind !== kind) throw new ConfigError(`${path} is not a ${kind} manifest`);
  return doc;
}

/** Go's spelling of a gRPC code, as kubelet shows it: PERMISSION_DENIED → PermissionDenied. */
function goCode(code: status): string {
  return status[code].toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

export async function mountCommand(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const o = parseFlags('mount', MOUNT_TABLE, argv);
  if (o === 'help') {
    out.write(MOUNT_HELP);
    return 0;
  }
  const say = (s: string) => out.write(`${s}\n`);
  const { spc, annotations, allowedBy, req } = readInputs(o);
  try {
    const { objects } = checkVolume(req, spc, annotations);
    describePlan(say, req, spc, objects);
    say(`allowed by ${allowedBy}: ${annotations?.[ALLOW_LIST_ANNOTATION]}`);
    if (o.dryRun) {
      say('dry run: the SPC is valid; nothing fetched or written');
      return 0;
    }
    await fetchAndWrite(say, o, req, spc, objects);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = toServiceError(err);
    say(`error: rpc error: code = ${goCode(e.code!)} desc = ${e.details}`);
    return 1;
  }
}

/** The SPC, the allow-list and the request a pod would make, from the flags. */
function readInputs(o: MountFlags) {
  if (!o.spc) throw new ConfigError('--spc FILE is required; see --help');
  if (!o.dryRun && !o.target) throw new ConfigError('--target DIR is required (or use --dry-run)');
  if (!o.serviceAccount && o.allow === undefined) {
    throw new ConfigError('give the allow-list: --service-account FILE or --allow secret_1,secret_2');
  }
  const spc = readManifest(o.spc, 'SecretProviderClass') as unknown as SecretProviderClass;
  const sa = o.serviceAccount ? readManifest(o.serviceAccount, 'ServiceAccount') : undefined;
  const names = (o.allow ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const annotations = sa ? sa.metadata?.annotations : { [ALLOW_LIST_ANNOTATION]: JSON.stringify(names) };
  const namespace = o.namespace ?? spc.metadata?.namespace ?? 'default';
  const req: PublishRequest = {
    volumeId: 'mount-cli',
    targetPath: resolve(o.target ?? '.'),
    volumeName: 'mount-cli',
    spcName: spc.metadata?.name ?? 'unnamed',
    podName: o.pod ?? 'mount-cli',
    podNamespace: namespace,
    podUid: '00000000-0000-0000-0000-000000000000',
    serviceAccount: sa?.metadata?.name ?? '(--allow)',
    secrets: {},
  };
  const allowedBy = sa ? `ServiceAccount ${namespace}/${req.serviceAccount}` : '--allow';
  return { spc, annotations, allowedBy, req };
}

function describePlan(
  say: (s: string) => void,
  req: PublishRequest,
  spc: SecretProviderClass,
  objects: SecretObject[],
) {
  const ref = `${req.podNamespace}/${req.spcName}`;
  say(`SecretProviderClass ${ref}: ${objects.length} object(s), provider ${spc.spec.provider}`);
  for (const ob of objects) {
    const extra = ob.jmesPath.map((j) => `${j.objectAlias} (jmesPath ${j.path})`);
    say(`  ${ob.objectName} (${ob.objectVersion}) -> ${[ob.fileName, ...extra].join(', ')}`);
  }
}

/** Reads the objects from CSMS, writes the files, and prints the SPCPS and Secrets a pod would get. */
async function fetchAndWrite(
  say: (s: string) => void,
  o: MountFlags,
  req: PublishRequest,
  spc: SecretProviderClass,
  objects: SecretObject[],
): Promise<void> {
  // The driver's own CSMS client and credentials, with every --csms-* flag.
  const { source, credentials } = setUpCsms(csmsSettings(o));
  const asked = objects.map((ob) => ({ name: ob.objectName, version: ob.objectVersion }));
  const values = await source.fetch(asked, await credentials.credentials());
  for (const v of values) say(`fetched ${v.name} version ${v.versionId} (${v.value.length} bytes)`);
  const content = buildVolumeContent(`${req.podNamespace}/${req.spcName}`, objects, values, volumeLimits(o));
  const secrets = (spc.spec.secretObjects ?? []).map((s, i) =>
    desiredSecret(req.podNamespace, spc, content.files, s, i),
  );
  await mkdir(req.targetPath, { recursive: true });
  const mounter = new TmpfsMounter();
  if (o.tmpfs && !(await mounter.isMountPoint(req.targetPath))) {
    await mounter.mount(req.targetPath, tmpfsSizeFor(content.files));
  }
  writeAtomically(req.targetPath, content.files, { modes: content.modes });
  say(`wrote ${content.files.size} file(s) to ${req.targetPath}: ${[...content.files.keys()].join(', ')}`);
  say('SecretProviderClassPodStatus a pod would get:');
  say(
    stringify(desiredSpcps(req, req.podUid, '<node>', content.versions))
      .trimEnd()
      .replace(/^/gm, '  '),
  );
  for (const s of secrets) {
    const keys = Object.keys(s.data ?? {}).join(', ');
    say(`Kubernetes Secret it would sync: ${s.metadata!.name} (${s.type}) with keys ${keys}`);
  }
}
