// Declarative command-line flags: each flag is one row (name, value form, default,
// environment fallback, help, parser), groups of rows are shared between commands,
// and both the parse and the help text come from the same rows.
import { parseArgs } from 'node:util';
import { errorMessage } from './errors.js';

export class ConfigError extends Error {}

export interface Flag<T> {
  /** Without the dashes: `csms-endpoint`. */
  name: string;
  short?: string;
  /** A switch: present or not, takes no value. */
  switch?: boolean;
  /** The value's form in the help, e.g. URL or DURATION. */
  metavar?: string;
  /** Read when the flag is not given. */
  env?: string;
  /** Used when neither the flag nor `env` is given. */
  default?: string;
  help: string;
  /** Turns the text into the value, or throws a ConfigError naming the flag and the form. */
  parse: (value: string | undefined, flag: string) => T;
}

export type FlagGroup = Record<string, Flag<unknown>>;
export type FlagValues<G extends FlagGroup> = { readonly [K in keyof G]: G[K] extends Flag<infer T> ? T : never };

/** Parses `argv` against `group`; 'help' when -h/--help is given. */
export function parseFlags<G extends FlagGroup>(
  command: string,
  group: G,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): FlagValues<G> | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const f of Object.values(group)) {
    options[f.name] = { type: f.switch ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    // klog spells it -v=2; parseArgs only knows --v=2 and -v 2.
    const args = argv.map((a) => a.replace(/^-v=/, '--v='));
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`${errorMessage(err)}; see 'cce-secrets-manager ${command} --help'`, { cause: err });
  }
  if (values.help) return 'help';
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(group)) {
    const given = values[f.name];
    const text = f.switch ? (given ? 'true' : undefined) : (given as string | undefined);
    out[key] = f.parse(text ?? (f.env ? env[f.env] : undefined) ?? f.default, flagLabel(f));
  }
  return Object.freeze(out) as FlagValues<G>;
}

function flagLabel(f: Flag<unknown>): string {
  return f.name.length === 1 ? `-${f.name}` : `--${f.name}`;
}

/** The help lines of `group` and -h, aligned, with each flag's default and environment variable. */
export function flagHelp(group: FlagGroup): string {
  const rows = Object.values(group).map((f) => {
    const names = f.short && f.short !== f.name ? `-${f.short}, ${flagLabel(f)}` : flagLabel(f);
    const left = f.metavar ? `${names} ${f.metavar}` : names;
    const extra = [f.default ? `default ${f.default || '""'}` : '', f.env ? `$${f.env}` : ''].filter(Boolean);
    return [left, extra.length ? `${f.help} (${extra.join('; ')})` : f.help] as const;
  });
  rows.push(['-h, --help', 'this help']);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r.replace(/\n/g, `\n  ${' '.repeat(width)}`)}`).join('\n');
}

// Parsers for the common value forms; each names the flag in its error.

export const text =
  (check?: (value: string, flag: string) => void) =>
  (value: string | undefined, flag: string): string | undefined => {
    if (value !== undefined) check?.(value, flag);
    return value;
  };

export const required =
  (why: string, check?: (value: string, flag: string) => void) =>
  (value: string | undefined, flag: string): string => {
    if (value === undefined || value === '') throw new ConfigError(`${flag} is required (${why})`);
    check?.(value, flag);
    return value;
  };

export const boolean = (value: string | undefined, flag: string): boolean => {
  if (value !== 'true' && value !== 'false') throw new ConfigError(`${flag} "${value}" must be true or false`);
  return value === 'true';
};

export const wholeNumber = (value: string | undefined, flag: string): number => {
  if (value === undefined || !/^\d+$/.test(value)) throw new ConfigError(`${flag} "${value}" must be a whole number`);
  return Number(value);
};

/** A TCP port, 1-65535; with `anyFree`, 0 too (the kernel picks one). */
export const port =
  (anyFree = false) =>
  (value: string | undefined, flag: string): number => {
    const n = /^\d{1,5}$/.test(value ?? '') ? Number(value) : NaN;
    if (!(n <= 65535 && n >= (anyFree ? 0 : 1))) {
      throw new ConfigError(`${flag} "${value}" must be a port number, ${anyFree ? '0 (any free port)' : '1'}-65535`);
    }
    return n;
  };

/** An absolute path without "..": its trailing slashes dropped. `what` says which path it is. */
export const absolutePath =
  (what = '') =>
  (value: string | undefined, flag: string): string => {
    if (!/^\/[^\0]*$/.test(value ?? '') || value!.split('/').includes('..')) {
      throw new ConfigError(`${flag} "${value}" must be an absolute path without ".."${what ? ` (${what})` : ''}`);
    }
    return value!.replace(/\/+$/, '') || '/';
  };

/** A `unix:///path` socket URL (its path ending in `suffix`), as kubelet and upstream write them; the value is the path. */
export const unixSocket =
  (example: string, suffix = '') =>
  (value: string | undefined, flag: string): string => {
    const path = /^unix:\/\/(\/.+)$/.exec(value ?? '')?.[1];
    if (!path || !path.endsWith(suffix) || path.split('/').includes('..')) {
      throw new ConfigError(`${flag} "${value ?? ''}" must look like ${example}`);
    }
    return path;
  };

/** `parse`, except that an empty value stays empty (off). */
export const optional =
  (parse: (value: string, flag: string) => string) =>
  (value: string | undefined, flag: string): string =>
    value ? parse(value, flag) : '';

/** `30s`, `2m`, `1h`, `1500ms` → milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value.trim());
  if (!m) throw new ConfigError(`${flag} "${value}" is not a duration; use e.g. 500ms, 30s, 2m or 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

export const duration =
  (min = 0, max = Infinity, range = '') =>
  (value: string | undefined, flag: string): number => {
    const ms = parseDuration(flag, value ?? '');
    if (ms < min || ms > max) throw new ConfigError(`${flag} "${value}" must be between ${range}`);
    return ms;
  };
