#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1 --max-old-space-size=128 --disable-warning=DEP0169
// Entry point: dispatches to a sub-command.
// The runtime settings above keep the resident size small: two malloc arenas, small
// young-generation semi-spaces, and an old generation bound that V8 collects before it
// reaches (BENCHMARKS.md has the heap in use at scale). Override in the chart.
// DEP0169: node-fetch 2 (client-node's HTTP library) parses the API server's URL, which comes
// from the kubeconfig, with the legacy url.parse(); Node.js 24 warns about that on every start.
import { errorMessage } from './errors.js';
import { ConfigError, parseServeArgs, SERVE_HELP } from './config.js';
import { csmsEmulator } from './commands/csms-emulator.js';
import { mountCommand } from './commands/mount.js';
import { providerCommand } from './commands/provider.js';
import { webhookCommand } from './commands/webhook.js';
import { serve } from './commands/serve.js';
import { syncCommand } from './commands/sync.js';
import { version } from './package-info.js';

const HELP = `Usage: cce-secrets-manager <command> [flags]

Commands:
  serve          run the CSI node driver with the built-in CSMS provider
  provider       serve the CSMS provider to the upstream driver (provider API v1alpha1)
  webhook        serve the validating admission webhook for SPCs and allow-lists
  sync           keep the Secrets of SecretSyncs (secret-sync.x-k8s.io) in step with CSMS
  mount          check an SPC and mount it into a folder, without Kubernetes
  csms-emulator  run a local CSMS emulator
  --version      print the version

Run 'cce-secrets-manager <command> --help' for a command's flags.
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const config = parseServeArgs(rest);
      if (config === 'help') process.stdout.write(SERVE_HELP);
      else await serve(config);
      return;
    }
    case 'csms-emulator':
      return csmsEmulator(rest);
    case 'provider':
      return providerCommand(rest);
    case 'webhook':
      return webhookCommand(rest);
    case 'sync':
      return syncCommand(rest);
    case 'mount':
      process.exitCode = await mountCommand(rest);
      return;
    case '--version':
    case 'version':
      process.stdout.write(`cce-secrets-manager ${version}\n`);
      return;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      throw new ConfigError(`unknown command "${command}"; run 'cce-secrets-manager --help'`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  const usage = err instanceof ConfigError || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS');
  process.stderr.write(`cce-secrets-manager: ${usage ? '' : 'fatal: '}${errorMessage(err)}\n`);
  process.exit(2);
});
