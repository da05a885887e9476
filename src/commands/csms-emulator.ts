// `cce-secrets-manager csms-emulator`: a local CSMS for development and tests.
import { parseArgs } from 'node:util';
import { CsmsEmulator } from '../provider/emulator/server.js';
import { DEFAULT_SEED, loadSeed } from '../provider/emulator/store.js';

export const EMULATOR_HELP = `Usage: cce-secrets-manager csms-emulator [--port N] [--host ADDR] [--seed FILE]

Serves the CSMS read API (GET /v1/{project}/secrets/{name}/versions/{version}, ...)
over HTTP with SDK-HMAC-SHA256 signature verification, plus test controls:
  POST   /_emulator/secrets/{name}/versions   {"secret_string": "..."} publishes a version
  PUT    /_emulator/secrets/{name}/state      {"state": "DISABLED"}
  POST   /_emulator/faults                    {"status": 429, "times": 3, "latencyMs": 0, "secret": "name"}
  DELETE /_emulator/faults                    clears faults
  GET    /_emulator/stats                     request counts; DELETE resets them
and the ECS metadata endpoints (/openstack/latest/securitykey) when the seed has an agency.

Seed file (YAML or JSON):
  projectId: 0123456789abcdef0123456789abcdef
  credentials: [{accessKey: AK, secretKey: SK}]
  secrets:
    - name: secret_1
      versions: ["first value", "second value"]   # v1, v2; {binary: <base64>} for bytes
`;

export async function csmsEmulator(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '8443' },
      host: { type: 'string', default: '127.0.0.1' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(EMULATOR_HELP);
    return;
  }
  const seed = values.seed ? loadSeed(values.seed) : DEFAULT_SEED;
  const emulator = new CsmsEmulator(seed);
  const url = await emulator.listen(Number(values.port), values.host);
  process.stdout.write(`CSMS emulator listening on ${url} (project ${seed.projectId})\n`);
  const stop = () => void emulator.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
