// `cce-secrets-manager csms-emulator`: a local CSMS for development and tests.
import { CsmsEmulator } from '../emulator/server.js';
import { DEFAULT_SEED, loadSeed } from '../emulator/store.js';
import { flagHelp, parseFlags, port, required, text } from '../flags.js';

const EMULATOR_FLAGS = {
  port: {
    name: 'port',
    metavar: 'N',
    default: '8443',
    help: 'port to listen on (0 = any free port)',
    parse: port(true),
  },
  host: {
    name: 'host',
    metavar: 'ADDR',
    default: '127.0.0.1',
    help: 'address to listen on',
    parse: required('an address'),
  },
  seed: { name: 'seed', metavar: 'FILE', help: 'secrets, credentials and project (YAML or JSON)', parse: text() },
};

export const EMULATOR_HELP = `Usage: cce-secrets-manager csms-emulator [flags]

Flags:
${flagHelp(EMULATOR_FLAGS)}

Serves the CSMS read API (GET /v1/{project}/secrets/{name}/versions/{version}, ...)
over HTTP with SDK-HMAC-SHA256 signature verification, plus test controls:
  POST   /_emulator/secrets/{name}/versions   {"secret_string": "..."} publishes a version
  PUT    /_emulator/secrets/{name}/state      {"state": "DISABLED"}
  POST   /_emulator/faults                    {"status": 429, "times": 3, "latencyMs": 0, "secret": "name"}
  DELETE /_emulator/faults                    clears faults
  GET    /_emulator/stats                     request counts; DELETE resets them
  PUT    /_emulator/pod-identity              replaces the seed's podIdentity
  GET    /_emulator/requests                  who (access key, agency) made each signed request
the ECS metadata endpoints (/openstack/latest/securitykey) when the seed has an agency, and
CCE Pod Identity (POST /api/v3/projects/{project}/clusters/{cluster}/assume-agency-for-pod-identity)
when it has podIdentity: {clusterId, jwks, associations, agencies} (CONTRIBUTING.md).

Seed file (YAML or JSON):
  projectId: 0123456789abcdef0123456789abcdef
  credentials: [{accessKey: AK, secretKey: SK}]
  secrets:
    - name: secret_1
      versions: ["first value", "second value"]   # v1, v2; {binary: <base64>} for bytes
`;

export async function csmsEmulator(argv: string[]): Promise<void> {
  const o = parseFlags('csms-emulator', EMULATOR_FLAGS, argv);
  if (o === 'help') {
    process.stdout.write(EMULATOR_HELP);
    return;
  }
  const seed = o.seed ? loadSeed(o.seed) : DEFAULT_SEED;
  const emulator = new CsmsEmulator(seed);
  const url = await emulator.listen(o.port, o.host);
  process.stdout.write(`CSMS emulator listening on ${url} (project ${seed.projectId})\n`);
  const stop = () => void emulator.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
