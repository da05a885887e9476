// A real node's pod network, as a CNI plugin and kube-proxy would make it, and nothing more:
// a CNI bridge with host-local addresses (its state in the test folder), and one DNAT rule that
// takes the `kubernetes` Service's ClusterIP from the bridge to the API server. Setting it up
// first removes what a killed run left; remove() puts the host back as it was.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BRIDGE = 'cce-test0';
const NETWORK = 'cce-test';
export const POD_SUBNET = '10.244.77.0/24';
// One word: `iptables -S` prints it unquoted, so leftovers can be found and deleted.
const RULE_TAG = 'cce-secrets-manager-test-node';
const CNI_RESULTS = '/var/lib/cni/results';
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export interface ApiService {
  clusterIp: string;
  port: number;
  /** address:port where the API server listens. */
  target: string;
}

export interface PodNetwork {
  /** containerd's CNI conf_dir. */
  confDir: string;
  remove(): void;
}

/** For clean-up steps that may find nothing to remove (no bridge made, no rule left). */
export function bestEffort(cmd: string, ...args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // nothing of that kind was left
  }
}

function ourRules(): string[][] {
  return execFileSync('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { encoding: 'utf8' })
    .split('\n')
    .filter((rule) => rule.includes(RULE_TAG))
    .map((rule) => rule.replace(/^-A /, '-D ').split(' '));
}

/** libcni's cached results of our network's sandboxes (it keeps them outside containerd's state). */
function removeCniResults(): void {
  if (!existsSync(CNI_RESULTS)) return;
  for (const file of readdirSync(CNI_RESULTS)) {
    const id = new RegExp(`^${NETWORK}-([0-9a-f]+)-eth0$`).exec(file)?.[1];
    if (!id) continue;
    rmSync(join(CNI_RESULTS, file), { force: true });
    rmSync(join(CNI_RESULTS, `cni-loopback-${id}-lo`), { force: true });
  }
}

function removeLeftovers(): void {
  for (const rule of ourRules()) bestEffort('iptables', '-t', 'nat', ...rule);
  bestEffort('ip', 'link', 'delete', BRIDGE);
  removeCniResults();
}

export function setUpPodNetwork(dir: string, api: ApiService): PodNetwork {
  removeLeftovers();
  const confDir = join(dir, 'cni');
  mkdirSync(confDir);
  writeFileSync(
    join(confDir, `10-${NETWORK}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: NETWORK,
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_SUBNET }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(dir, 'ipam'),
          },
        },
      ],
    }),
  );
  // The bridge plugin turns forwarding on for its gateway; the host gets its setting back.
  const forwarding = readFileSync(IP_FORWARD, 'utf8').trim();
  const rule = ['-i', BRIDGE, '-d', `${api.clusterIp}/32`, '-p', 'tcp', '--dport', String(api.port)];
  const tag = ['-m', 'comment', '--comment', RULE_TAG, '-j', 'DNAT', '--to-destination', api.target];
  execFileSync('iptables', ['-t', 'nat', '-A', 'PREROUTING', ...rule, ...tag]);
  return {
    confDir,
    remove: () => {
      removeLeftovers();
      writeFileSync(IP_FORWARD, forwarding);
    },
  };
}
