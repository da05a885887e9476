// Every flag and environment variable of `serve`, parsed once into a frozen,
// validated object; a bad value stops start-up with the flag and the allowed form.
import { parseArgs } from 'node:util';
import { csmsEndpointForRegion, DEFAULT_MAX_RESPONSE_BYTES } from './provider/csms-client.js';
import { DEFAULT_METADATA_ENDPOINT } from './provider/credentials.js';
import { parseListenAddress } from './ops-server.js';

export interface ServeConfig {
  endpoint: string;
  nodeId: string;
  kubeconfig?: string;
  csmsEndpoint: string;
  projectId?: string;
  metadataEndpoint: string;
  verbosity: number;
  logJson: boolean;
  maxCallRecvMsgSize: number;
  csmsTimeoutMs: number;
  rotationEnabled: boolean;
  rotationIntervalMs: number;
  /** Whether secretObjects become Kubernetes Secrets (needs write access to Secrets). */
  syncSecrets: boolean;
  /** SPCs in the cluster beyond this many (oldest first) are refused at mount time; 0 = no limit. */
  maxSecretProviderClasses: number;
  /** host:port of /metrics, /healthz and /readyz; '' turns it off. */
  metricsAddr: string;
  /** kubelet's --root-dir: target paths must be its pods' CSI volume folders. */
  kubeletRoot: string;
  csmsMaxResponseBytes: number;
}

export class ConfigError extends Error {}

export const SERVE_HELP = `Usage: cce-secrets-manager serve [flags]

Serves the Secrets Store CSI node driver (secrets-store.csi.k8s.io) with the
built-in Huawei Cloud DEW/CSMS provider (provider: cce).

Flags:
  --endpoint URL               CSI socket (default unix:///csi/csi.sock)
  --nodeid NAME                this node's name (default $NODE_NAME; required)
  --kubeconfig PATH            kubeconfig file (default: in-cluster ServiceAccount)
  --region REGION              Huawei Cloud region, e.g. cn-north-4 (default $HUAWEICLOUD_SDK_REGION)
  --csms-endpoint URL          CSMS endpoint; overrides --region (VPC endpoints, tests)
  --project-id ID              project id (default $HUAWEICLOUD_SDK_PROJECT_ID, else ECS metadata)
  --metadata-endpoint URL      ECS metadata service (default ${DEFAULT_METADATA_ENDPOINT})
  --csms-timeout DURATION      per-request CSMS timeout, e.g. 5s (default 5s)
  --enable-secret-rotation BOOL re-read "latest" objects periodically (default true)
  --rotation-poll-interval DUR  rotation period, 1s..1440m, e.g. 30s, 2m, 90m (default 2m)
  --enable-secret-sync BOOL     create Kubernetes Secrets from secretObjects (default true)
  --max-secret-provider-classes N  SPCs allowed in the cluster; newer ones beyond it
                               cannot be mounted (default 500, 0 = no limit)
  --metrics-addr ADDR           /metrics, /healthz, /readyz listen address (default :8095; "" = off)
  --kubelet-root-dir PATH       kubelet's root folder (default /var/lib/kubelet; CCE: /mnt/paas/kubernetes/kubelet);
                               only <root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount is ever touched
  --csms-max-response-bytes N   largest CSMS reply accepted (default ${DEFAULT_MAX_RESPONSE_BYTES})
  --allow-plaintext-endpoints   allow http:// CSMS or metadata endpoints that are not loopback
                               or 169.254.169.254 (secrets and keys would cross the network unencrypted)
  --max-call-recv-msg-size N   largest gRPC message accepted, bytes (default 4194304)
  -v, --v N                    log verbosity (default 0)
  --log-format-json            JSON log lines instead of klog text
  -h, --help                   this help

Credentials for CSMS, first found wins: the volume's nodePublishSecretRef
(access_key, secret_key, security_token), HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK
(/HUAWEICLOUD_SDK_SECURITY_TOKEN), then the node's IAM agency.
`;

/** `30s`, `2m`, `1h`, `1500ms` → milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value.trim());
  if (!m) throw new ConfigError(`${flag} "${value}" is not a duration; use e.g. 500ms, 30s, 2m or 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

function listenAddress(value: string): string {
  if (value === '') return value;
  try {
    parseListenAddress(value);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return value;
}

function bool(flag: string, value: string): boolean {
  if (value !== 'true' && value !== 'false') throw new ConfigError(`${flag} "${value}" must be true or false`);
  return value === 'true';
}

function nonNegativeInt(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(`${flag} "${value}" must be a whole number`);
  return Number(value);
}

const PLAINTEXT_OK = /^(localhost|127(\.\d{1,3}){3}|\[::1\]|169\.254\.169\.254)$/;

/**
 * An http(s) URL; plain http only to this machine or the link-local metadata address,
 * unless the operator says plaintext is intended: CSMS replies carry secrets, and the
 * metadata service hands out keys.
 */
export function checkEndpoint(flag: string, url: string, allowPlaintext: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${flag} "${url}" must be an http(s) URL`);
  }
  if (parsed.protocol === 'https:') return;
  if (parsed.protocol !== 'http:') throw new ConfigError(`${flag} "${url}" must be an http(s) URL`);
  if (!allowPlaintext && !PLAINTEXT_OK.test(parsed.hostname)) {
    throw new ConfigError(
      `${flag} "${url}" is plain http to another machine; use https, or pass --allow-plaintext-endpoints if that is intended`,
    );
  }
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      // klog spells it -v=2; parseArgs only knows --v=2 and -v 2.
      args: argv.map((a) => a.replace(/^-v=/, '--v=')),
      strict: true,
      allowPositionals: false,
      options: {
        endpoint: { type: 'string', default: 'unix:///csi/csi.sock' },
        nodeid: { type: 'string' },
        kubeconfig: { type: 'string' },
        region: { type: 'string' },
        'csms-endpoint': { type: 'string' },
        'project-id': { type: 'string' },
        'metadata-endpoint': { type: 'string', default: DEFAULT_METADATA_ENDPOINT },
        'csms-timeout': { type: 'string', default: '5s' },
        'max-call-recv-msg-size': { type: 'string', default: String(4 * 1024 * 1024) },
        'enable-secret-rotation': { type: 'string', default: 'true' },
        'rotation-poll-interval': { type: 'string', default: '2m' },
        'enable-secret-sync': { type: 'string', default: 'true' },
        'metrics-addr': { type: 'string', default: ':8095' },
        'max-secret-provider-classes': { type: 'string', default: '500' },
        'kubelet-root-dir': { type: 'string', default: '/var/lib/kubelet' },
        'csms-max-response-bytes': { type: 'string', default: String(DEFAULT_MAX_RESPONSE_BYTES) },
        'allow-plaintext-endpoints': { type: 'boolean', default: false },
        v: { type: 'string', short: 'v', default: '0' },
        'log-format-json': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; see 'cce-secrets-manager serve --help'`);
  }
  const o = parsed.values;
  if (o.help) return 'help';
  const nodeId = o.nodeid ?? env.NODE_NAME;
  if (!nodeId) throw new ConfigError('--nodeid is required (or set NODE_NAME from the downward API spec.nodeName)');
  if (!/^unix:\/\/\/.+/.test(o.endpoint!))
    throw new ConfigError(`--endpoint "${o.endpoint}" must look like unix:///csi/csi.sock`);
  const region = o.region ?? env.HUAWEICLOUD_SDK_REGION;
  let csmsEndpoint = o['csms-endpoint'];
  if (!csmsEndpoint) {
    if (!region)
      throw new ConfigError('set --region (e.g. cn-north-4) or --csms-endpoint so the driver knows where CSMS is');
    if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region))
      throw new ConfigError(`--region "${region}" does not look like a Huawei Cloud region such as cn-north-4`);
    csmsEndpoint = csmsEndpointForRegion(region);
  }
  for (const [flag, url] of [
    ['--csms-endpoint', csmsEndpoint],
    ['--metadata-endpoint', o['metadata-endpoint']!],
  ] as const) {
    checkEndpoint(flag, url, o['allow-plaintext-endpoints']!);
  }
  const kubeletRoot = o['kubelet-root-dir']!.replace(/\/+$/, '');
  if (!/^\/[^\0]*$/.test(kubeletRoot) || kubeletRoot.split('/').includes('..')) {
    throw new ConfigError(
      `--kubelet-root-dir "${o['kubelet-root-dir']}" must be an absolute path without ".." (kubelet's --root-dir)`,
    );
  }
  const projectId = o['project-id'] ?? env.HUAWEICLOUD_SDK_PROJECT_ID;
  if (projectId !== undefined && !/^[0-9a-zA-Z]{1,64}$/.test(projectId))
    throw new ConfigError(`--project-id "${projectId}" must be the project's id (32 hex characters)`);
  const rotationIntervalMs = parseDuration('--rotation-poll-interval', o['rotation-poll-interval']!);
  if (rotationIntervalMs < 1000 || rotationIntervalMs > 1440 * 60_000) {
    throw new ConfigError(`--rotation-poll-interval "${o['rotation-poll-interval']}" must be between 1s and 1440m`);
  }
  return Object.freeze({
    endpoint: o.endpoint!,
    nodeId,
    kubeconfig: o.kubeconfig,
    csmsEndpoint,
    projectId,
    metadataEndpoint: o['metadata-endpoint']!,
    verbosity: nonNegativeInt('-v', o.v!),
    logJson: o['log-format-json']!,
    maxCallRecvMsgSize: nonNegativeInt('--max-call-recv-msg-size', o['max-call-recv-msg-size']!),
    csmsTimeoutMs: parseDuration('--csms-timeout', o['csms-timeout']!),
    rotationEnabled: bool('--enable-secret-rotation', o['enable-secret-rotation']!),
    rotationIntervalMs,
    syncSecrets: bool('--enable-secret-sync', o['enable-secret-sync']!),
    metricsAddr: listenAddress(o['metrics-addr']!),
    maxSecretProviderClasses: nonNegativeInt('--max-secret-provider-classes', o['max-secret-provider-classes']!),
    kubeletRoot,
    csmsMaxResponseBytes: nonNegativeInt('--csms-max-response-bytes', o['csms-max-response-bytes']!),
  });
}
