// `cce-secrets-manager mount`: the checks, fetch and atomic write of NodePublishVolume
// for one SPC into a folder, without Kubernetes, printing what it did or the exact
// error a pod would get. For trying an SPC before deploying it.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { checkEndpoint, ConfigError } from '../config.js';
import { ALLOW_LIST_ANNOTATION, type SecretProviderClass } from '../crds/types.js';
import { writeAtomically } from '../driver/atomic-writer.js';
import { buildVolumeContent } from '../driver/files.js';
import { toServiceError } from '../driver/grpc-status.js';
import { isMountPoint, mountTmpfs, tmpfsSizeFor } from '../driver/mounter.js';
import { desiredSpcps } from '../driver/spcps.js';
import { checkVolume } from '../driver/volume-plan.js';
import type { PublishRequest } from '../driver/volume-request.js';
import { csmsEndpointForRegion, CsmsClient } from '../provider/csms-client.js';
import { defaultCredentialProvider, MetadataCredentials } from '../provider/credentials.js';
import { CsmsSecretSource } from '../provider/source.js';
import { desiredSecret } from '../reconciler/secret-sync.js';
import { status } from '@grpc/grpc-js';

export const MOUNT_HELP = `Usage: cce-secrets-manager mount --spc FILE --target DIR (--service-account FILE | --allow LIST) [flags]

Runs what NodePublishVolume runs for one SecretProviderClass (parse and check the
objects, check the ServiceAccount allow-list, fetch from CSMS, write the files
atomically) into a folder, and prints the SPCPS and Secrets a pod would get, or the
exact error the pod would see. No Kubernetes needed.

Flags:
  --spc FILE              SecretProviderClass manifest (YAML)
  --service-account FILE  ServiceAccount manifest whose ${ALLOW_LIST_ANNOTATION} annotation applies
  --allow LIST            the allow-list as comma-separated secret names, instead
  --target DIR            folder for the files (created if missing)
  --tmpfs                 mount a tmpfs at --target first, as the driver does (root only)
  --dry-run               check only: no CSMS request, nothing written
  --namespace NS          the pod's namespace (default: the SPC's, else "default")
  --pod NAME              the pod's name, for the printed SPCPS (default: mount-cli)
  --region REGION | --csms-endpoint URL
  --project-id ID         (default $HUAWEICLOUD_SDK_PROJECT_ID, else ECS metadata)
  --metadata-endpoint URL
  --allow-plaintext-endpoints  allow http:// endpoints that are not loopback or 169.254.169.254

Credentials: HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK (/ HUAWEICLOUD_SDK_SECURITY_TOKEN),
else the node agency through the ECS metadata service.
`;

function readManifest(path: string, kind: string): Record<string, any> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!doc || (doc as { kind?: string }).kind !== kind) throw new ConfigError(`${path} is not a ${kind} manifest`);
  return doc as Record<string, any>;
}

/** Go's spelling of a gRPC code, as kubelet shows it: PERMISSION_DENIED → PermissionDenied. */
function goCode(code: status): string {
  return status[code].toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

export async function mountCommand(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      spc: { type: 'string' },
      'service-account': { type: 'string' },
      allow: { type: 'string' },
      target: { type: 'string' },
      tmpfs: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      namespace: { type: 'string' },
      pod: { type: 'string', default: 'mount-cli' },
      region: { type: 'string' },
      'csms-endpoint': { type: 'string' },
      'project-id': { type: 'string' },
      'metadata-endpoint': { type: 'string' },
      'allow-plaintext-endpoints': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const say = (s: string) => out.write(`${s}\n`);
  if (o.help) {
    out.write(MOUNT_HELP);
    return 0;
  }
  if (!o.spc) throw new ConfigError('--spc FILE is required; see --help');
  if (!o['dry-run'] && !o.target) throw new ConfigError('--target DIR is required (or use --dry-run)');
  if (!o['service-account'] && o.allow === undefined)
    throw new ConfigError('give the allow-list: --service-account FILE or --allow secret_1,secret_2');
  const spc = readManifest(o.spc, 'SecretProviderClass') as SecretProviderClass;
  const sa = o['service-account'] ? readManifest(o['service-account'], 'ServiceAccount') : undefined;
  const annotations: Record<string, string> | undefined = sa
    ? sa.metadata?.annotations
    : {
        [ALLOW_LIST_ANNOTATION]: JSON.stringify(
          o
            .allow!.split(',')
            .map((x) => x.trim())
            .filter(Boolean),
        ),
      };
  const namespace = o.namespace ?? spc.metadata?.namespace ?? 'default';
  const req: PublishRequest = {
    volumeId: 'mount-cli',
    targetPath: resolve(o.target ?? '.'),
    volumeName: 'mount-cli',
    spcName: spc.metadata?.name ?? 'unnamed',
    podName: o.pod!,
    podNamespace: namespace,
    podUid: '00000000-0000-0000-0000-000000000000',
    serviceAccount: sa?.metadata?.name ?? '(--allow)',
    secrets: {},
  };
  try {
    const { objects } = checkVolume(req, spc, annotations);
    say(`SecretProviderClass ${namespace}/${req.spcName}: ${objects.length} object(s), provider ${spc.spec.provider}`);
    for (const ob of objects) {
      const extra = ob.jmesPath.map((j) => `${j.objectAlias} (jmesPath ${j.path})`);
      say(`  ${ob.objectName} (${ob.objectVersion}) -> ${[ob.fileName, ...extra].join(', ')}`);
    }
    say(
      `allowed by ${sa ? `ServiceAccount ${namespace}/${req.serviceAccount}` : '--allow'}: ${annotations?.[ALLOW_LIST_ANNOTATION]}`,
    );
    if (o['dry-run']) {
      say('dry run: the SPC is valid; nothing fetched or written');
      return 0;
    }
    const metadata = new MetadataCredentials({ endpoint: o['metadata-endpoint'] });
    const endpoint = o['csms-endpoint'] ?? (o.region ? csmsEndpointForRegion(o.region) : undefined);
    if (!endpoint) throw new ConfigError('set --region or --csms-endpoint');
    checkEndpoint('--csms-endpoint', endpoint, o['allow-plaintext-endpoints']!);
    if (o['metadata-endpoint'])
      checkEndpoint('--metadata-endpoint', o['metadata-endpoint'], o['allow-plaintext-endpoints']!);
    const projectId = o['project-id'] ?? process.env.HUAWEICLOUD_SDK_PROJECT_ID ?? (await metadata.projectId());
    const source = new CsmsSecretSource(new CsmsClient({ endpoint, projectId }));
    const creds = await defaultCredentialProvider(metadata).credentials();
    const values = await source.fetch(
      objects.map((ob) => ({ name: ob.objectName, version: ob.objectVersion })),
      creds,
    );
    for (const v of values) say(`fetched ${v.name} version ${v.versionId} (${v.value.length} bytes)`);
    const content = buildVolumeContent(objects, values);
    const secrets = (spc.spec.secretObjects ?? []).map((s, i) => desiredSecret(req, spc, content.files, s, i));
    await mkdir(req.targetPath, { recursive: true });
    if (o.tmpfs && !(await isMountPoint(req.targetPath))) await mountTmpfs(req.targetPath, tmpfsSizeFor(content.files));
    writeAtomically(req.targetPath, content.files);
    say(`wrote ${content.files.size} file(s) to ${req.targetPath}: ${[...content.files.keys()].join(', ')}`);
    say('SecretProviderClassPodStatus a pod would get:');
    say(
      stringify(desiredSpcps(req, req.podUid, '<node>', content.versions))
        .trimEnd()
        .replace(/^/gm, '  '),
    );
    for (const s of secrets)
      say(
        `Kubernetes Secret it would sync: ${s.metadata!.name} (${s.type}) with keys ${Object.keys(s.data ?? {}).join(', ')}`,
      );
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = toServiceError(err);
    say(`error: rpc error: code = ${goCode(e.code!)} desc = ${e.details}`);
    return 1;
  }
}
