// The flag groups of every command, as tables (flags.ts): logging, CSMS and its
// credentials (shared by `serve` and `mount`, so both check them alike), the node
// driver's own, and the emulator's. `serve` gets one frozen, validated ServeConfig.
import { DEFAULT_MAX_RESPONSE_BYTES, csmsEndpointForRegion } from './provider/csms-client.js';
import type { CsmsSettings, PodIdentityConfig } from './provider/csms-setup.js';
import { cceEndpointForRegion } from './provider/pod-identity.js';
import { DEFAULT_METADATA_ENDPOINT } from './provider/credentials.js';
import { DEFAULT_PROVIDER_DIRS } from './provider-api/client.js';
import { parseListenAddress } from './ops-server.js';
import { errorMessage } from './errors.js';
import { NAMESPACE_POLICIES, type NamespacePolicy } from './access/namespace-permit.js';
import { PERMIT_ANNOTATION } from './crds/types.js';
import { DEFAULT_VOLUME_LIMITS, type VolumeLimits } from './provider/volume-content.js';
import { DEFAULT_MAX_OBJECT_BYTES } from './kube/object-budget.js';
import {
  ConfigError,
  absolutePath,
  boolean,
  duration,
  flagHelp,
  optional,
  parseFlags,
  required,
  text,
  unixSocket,
  wholeNumber,
  type FlagValues,
} from './flags.js';

export { ConfigError, parseDuration } from './flags.js';

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
  } catch (err) {
    throw new ConfigError(`${flag} "${url}" must be an http(s) URL`, { cause: err });
  }
  if (parsed.protocol === 'https:') return;
  if (parsed.protocol !== 'http:') throw new ConfigError(`${flag} "${url}" must be an http(s) URL`);
  if (!allowPlaintext && !PLAINTEXT_OK.test(parsed.hostname)) {
    throw new ConfigError(
      `${flag} "${url}" is plain http to another machine; use https, or pass --allow-plaintext-endpoints if that is intended`,
    );
  }
}

export const LOG_FLAGS = {
  verbosity: { name: 'v', short: 'v', metavar: 'N', default: '0', help: 'log verbosity', parse: wholeNumber },
  logJson: { name: 'log-format-json', switch: true, help: 'JSON log lines instead of klog text', parse: Boolean },
};

export const CSMS_FLAGS = {
  region: {
    name: 'region',
    metavar: 'REGION',
    env: 'HUAWEICLOUD_SDK_REGION',
    help: 'Huawei Cloud region, e.g. cn-north-4',
    parse: text((v, flag) => {
      if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(v)) {
        throw new ConfigError(`${flag} "${v}" does not look like a Huawei Cloud region such as cn-north-4`);
      }
    }),
  },
  csmsEndpoint: {
    name: 'csms-endpoint',
    metavar: 'URL',
    help: 'CSMS endpoint; overrides --region (VPC endpoints, tests)',
    parse: text(),
  },
  projectId: {
    name: 'project-id',
    metavar: 'ID',
    env: 'HUAWEICLOUD_SDK_PROJECT_ID',
    help: 'project id (else read from ECS metadata when first needed)',
    parse: text((v, flag) => {
      if (!/^[0-9a-zA-Z]{1,64}$/.test(v))
        throw new ConfigError(`${flag} "${v}" must be the project's id (32 hex characters)`);
    }),
  },
  metadataEndpoint: {
    name: 'metadata-endpoint',
    metavar: 'URL',
    default: DEFAULT_METADATA_ENDPOINT,
    help: 'ECS metadata service (node agency keys, project id)',
    parse: required('the ECS metadata service'),
  },
  csmsTimeoutMs: {
    name: 'csms-timeout',
    metavar: 'DURATION',
    default: '5s',
    help: 'per-request CSMS timeout, e.g. 5s',
    parse: duration(),
  },
  csmsMaxResponseBytes: {
    name: 'csms-max-response-bytes',
    metavar: 'N',
    default: String(DEFAULT_MAX_RESPONSE_BYTES),
    help: 'largest CSMS reply accepted',
    parse: wholeNumber,
  },
  allowPlaintext: {
    name: 'allow-plaintext-endpoints',
    switch: true,
    help: 'allow http:// CSMS or metadata endpoints that are not loopback or 169.254.169.254\n(secrets and keys would cross the network unencrypted)',
    parse: Boolean,
  },
};

/** Per-pod cloud identity through CCE Pod Identity, for the commands that mount (serve, provider). */
export const POD_IDENTITY_FLAGS = {
  clusterId: {
    name: 'cluster-id',
    metavar: 'ID',
    env: 'CCE_CLUSTER_ID',
    help: 'the CCE cluster\'s id: turns pod identity on (SPCs with usePodIdentity: "true")',
    parse: text((v, flag) => {
      if (!/^[0-9a-zA-Z-]{1,64}$/.test(v)) throw new ConfigError(`${flag} "${v}" must be the CCE cluster's id`);
    }),
  },
  cceEndpoint: {
    name: 'cce-endpoint',
    metavar: 'URL',
    help: 'CCE endpoint for the pod identity exchange; default from --region',
    parse: text(),
  },
  requirePodIdentity: {
    name: 'require-pod-identity',
    switch: true,
    help: "every cce volume reads CSMS as its pod's own ServiceAccount agency; the node's\nidentity never reads a pod's secrets (needs --cluster-id)",
    parse: Boolean,
  },
};

/** Pod identity's settings, checked; undefined when it is off (no --cluster-id). */
export function podIdentityConfig(
  o: FlagValues<typeof POD_IDENTITY_FLAGS> & { region?: string; allowPlaintext: boolean },
): PodIdentityConfig | undefined {
  if (!o.clusterId) {
    if (o.requirePodIdentity)
      throw new ConfigError(
        '--require-pod-identity needs --cluster-id, the CCE cluster that pods exchange their tokens with',
      );
    return undefined;
  }
  const cceEndpoint = o.cceEndpoint ?? (o.region ? cceEndpointForRegion(o.region) : undefined);
  if (!cceEndpoint)
    throw new ConfigError('set --region (e.g. cn-north-4) or --cce-endpoint so that pod identity knows where CCE is');
  checkEndpoint('--cce-endpoint', cceEndpoint, o.allowPlaintext);
  return { clusterId: o.clusterId, cceEndpoint, required: o.requirePodIdentity };
}

const positive = (value: string | undefined, flag: string): number => {
  const n = wholeNumber(value, flag);
  if (n < 1) throw new ConfigError(`${flag} "${value}" must be at least 1`);
  return n;
};

/** What one volume may hold and cost, for every command that builds volumes (serve, provider, mount). */
export const VOLUME_FLAGS = {
  maxFileBytes: {
    name: 'max-file-bytes',
    metavar: 'N',
    default: String(DEFAULT_VOLUME_LIMITS.maxFileBytes),
    help: "largest file of a volume, whether fetched, computed by a jmesPath entry or\nan external provider's",
    parse: positive,
  },
  maxVolumeBytes: {
    name: 'max-volume-bytes',
    metavar: 'N',
    default: String(DEFAULT_VOLUME_LIMITS.maxVolumeBytes),
    help: "largest total of a volume's files",
    parse: positive,
  },
  jmesPathBudgetMs: {
    name: 'jmespath-budget',
    metavar: 'DURATION',
    default: `${DEFAULT_VOLUME_LIMITS.jmesPathBudgetMs}ms`,
    help: 'time the jmesPath entries of one volume may take together',
    parse: duration(1, 10_000, '1ms and 10s'),
  },
};

export function volumeLimits(o: FlagValues<typeof VOLUME_FLAGS>): VolumeLimits {
  if (o.maxFileBytes > o.maxVolumeBytes) {
    throw new ConfigError(`--max-file-bytes ${o.maxFileBytes} must not exceed --max-volume-bytes ${o.maxVolumeBytes}`);
  }
  return Object.freeze({
    maxFileBytes: o.maxFileBytes,
    maxVolumeBytes: o.maxVolumeBytes,
    jmesPathBudgetMs: o.jmesPathBudgetMs,
  });
}

/** Where CSMS is and how it is reached, checked the same way for every command. */
export function csmsSettings(o: FlagValues<typeof CSMS_FLAGS>): CsmsSettings {
  const csmsEndpoint = o.csmsEndpoint ?? (o.region ? csmsEndpointForRegion(o.region) : undefined);
  if (!csmsEndpoint)
    throw new ConfigError('set --region (e.g. cn-north-4) or --csms-endpoint so the driver knows where CSMS is');
  checkEndpoint('--csms-endpoint', csmsEndpoint, o.allowPlaintext);
  checkEndpoint('--metadata-endpoint', o.metadataEndpoint, o.allowPlaintext);
  const { projectId, metadataEndpoint, csmsTimeoutMs, csmsMaxResponseBytes } = o;
  return { csmsEndpoint, projectId, metadataEndpoint, csmsTimeoutMs, csmsMaxResponseBytes };
}

/** csmsSettings with pod identity, for the commands that mount a pod's volumes. */
export function mountingCsmsSettings(o: FlagValues<typeof CSMS_FLAGS> & FlagValues<typeof POD_IDENTITY_FLAGS>) {
  return { ...csmsSettings(o), podIdentity: podIdentityConfig(o) };
}

const listenAddress = (value: string | undefined, flag: string): string => {
  if (!value) return '';
  try {
    parseListenAddress(value);
  } catch (err) {
    throw new ConfigError(`${flag}: ${errorMessage(err)}`, { cause: err });
  }
  return value;
};

export const SERVE_FLAGS = {
  socket: {
    name: 'endpoint',
    metavar: 'URL',
    default: 'unix:///csi/csi.sock',
    help: 'CSI socket',
    parse: unixSocket('unix:///csi/csi.sock'),
  },
  nodeId: {
    name: 'nodeid',
    metavar: 'NAME',
    env: 'NODE_NAME',
    help: "this node's name",
    parse: required('or set NODE_NAME from the downward API spec.nodeName'),
  },
  kubeconfig: {
    name: 'kubeconfig',
    metavar: 'PATH',
    help: 'kubeconfig file (else the in-cluster ServiceAccount)',
    parse: text(),
  },
  maxObjectBytes: {
    name: 'max-object-bytes',
    metavar: 'N',
    default: String(DEFAULT_MAX_OBJECT_BYTES),
    help: 'largest Kubernetes object (JSON) read from the API server or a watch;\na larger one is refused or its event skipped, with a log line',
    parse: positive,
  },
  rotationEnabled: {
    name: 'enable-secret-rotation',
    metavar: 'BOOL',
    default: 'true',
    help: 're-read "latest" objects periodically',
    parse: boolean,
  },
  rotationIntervalMs: {
    name: 'rotation-poll-interval',
    metavar: 'DURATION',
    default: '2m',
    help: 'rotation period, 1s..1440m, e.g. 30s, 2m, 90m',
    parse: duration(1000, 1440 * 60_000, '1s and 1440m'),
  },
  syncSecrets: {
    name: 'enable-secret-sync',
    metavar: 'BOOL',
    default: 'true',
    help: 'create Kubernetes Secrets from secretObjects (needs write access to Secrets)',
    parse: boolean,
  },
  namespacePolicy: {
    name: 'namespace-policy',
    metavar: 'MODE',
    default: 'audit',
    help: `the cluster admin's Namespace permit (annotation ${PERMIT_ANNOTATION}): enforce refuses\nCSMS secrets it does not cover; audit mounts them with a Warning event; off ignores it`,
    parse: (value: string | undefined, flag: string): NamespacePolicy => {
      if (!NAMESPACE_POLICIES.includes(value as NamespacePolicy))
        throw new ConfigError(`${flag} "${value}" must be one of ${NAMESPACE_POLICIES.join(', ')}`);
      return value as NamespacePolicy;
    },
  },
  maxSecretProviderClasses: {
    name: 'max-secret-provider-classes',
    metavar: 'N',
    default: '500',
    help: 'SPCs allowed in the cluster; newer ones beyond it cannot be mounted (0 = no limit)',
    parse: wholeNumber,
  },
  metricsAddr: {
    name: 'metrics-addr',
    metavar: 'ADDR',
    default: ':8095',
    help: '/metrics, /healthz, /readyz listen address ("" = off)',
    parse: listenAddress,
  },
  kubeletRoot: {
    name: 'kubelet-root-dir',
    metavar: 'PATH',
    default: '/var/lib/kubelet',
    help: "kubelet's root folder (CCE: /mnt/paas/kubernetes/kubelet); only\n<root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount is ever touched",
    parse: (value: string | undefined, flag: string) => {
      const root = absolutePath("kubelet's --root-dir")(value, flag);
      if (root === '/') throw new ConfigError(`${flag} "${value}" must be kubelet's --root-dir, not /`);
      return root;
    },
  },
  pluginRegistrationDir: {
    name: 'plugin-registration-dir',
    metavar: 'PATH',
    default: '',
    help: 'kubelet\'s plugins_registry folder (<kubelet root>/plugins_registry as mounted here):\nthe driver registers itself with kubelet there, as node-driver-registrar would ("" = off)',
    parse: optional(absolutePath()),
  },
  kubeletCsiSocket: {
    name: 'kubelet-registration-path',
    metavar: 'PATH',
    default: '',
    help: "the CSI socket's path as kubelet sees it on the host, which registration reports\n(default: the --endpoint path, right when the driver runs on the host)",
    parse: optional(absolutePath()),
  },
  maxCallRecvMsgSize: {
    name: 'max-call-recv-msg-size',
    metavar: 'N',
    default: String(4 * 1024 * 1024),
    help: 'largest gRPC message accepted from kubelet or from a provider, bytes',
    parse: wholeNumber,
  },
  providerVolume: {
    name: 'provider-volume',
    metavar: 'PATH',
    default: DEFAULT_PROVIDER_DIRS[0],
    help: 'folder of external providers\' sockets (<provider>.sock), for SPCs whose provider is not "cce"',
    parse: absolutePath(),
  },
  additionalProviderPaths: {
    name: 'additional-provider-volume-paths',
    metavar: 'PATHS',
    default: DEFAULT_PROVIDER_DIRS.slice(1).join(','),
    help: 'more such folders, comma-separated ("" = none)',
    parse: (value: string | undefined, flag: string) =>
      (value ?? '')
        .split(',')
        .filter((p) => p !== '')
        .map((p) => absolutePath()(p, flag)),
  },
  providerTimeoutMs: {
    name: 'provider-timeout',
    metavar: 'DURATION',
    default: '30s',
    help: 'deadline of each call to an external provider',
    parse: duration(),
  },
};

const SERVE_TABLE = { ...SERVE_FLAGS, ...VOLUME_FLAGS, ...CSMS_FLAGS, ...POD_IDENTITY_FLAGS, ...LOG_FLAGS };

export type ServeConfig = Readonly<
  Omit<
    FlagValues<typeof SERVE_TABLE>,
    keyof typeof CSMS_FLAGS | keyof typeof VOLUME_FLAGS | keyof typeof POD_IDENTITY_FLAGS
  > &
    CsmsSettings & { allowPlaintext: boolean; limits: VolumeLimits }
>;

export const SERVE_HELP = `Usage: cce-secrets-manager serve [flags]

Serves the Secrets Store CSI node driver (secrets-store.csi.k8s.io) with the
built-in Huawei Cloud DEW/CSMS provider (provider: cce). SPCs of any other
provider go to that provider's socket, <provider folder>/<provider>.sock.

Flags:
${flagHelp(SERVE_TABLE)}

Credentials for CSMS, first found wins: the pod's own ServiceAccount agency through
CCE Pod Identity (usePodIdentity: "true", or every volume with --require-pod-identity),
the volume's nodePublishSecretRef (access_key, secret_key, security_token),
HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (/HUAWEICLOUD_SDK_SECURITY_TOKEN), then the
node's IAM agency.
`;

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig | 'help' {
  const o = parseFlags('serve', SERVE_TABLE, argv, env);
  if (o === 'help') return 'help';
  return Object.freeze({ ...o, ...mountingCsmsSettings(o), limits: volumeLimits(o) });
}
