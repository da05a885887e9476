// One logger for the process: klog-shaped lines by default (what operators of the
// upstream driver grep for), JSON on request, klog-style verbosity levels.
import winston from 'winston';

export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Messages only shown at `-v level` or above. */
  v(level: number): { info(msg: string, fields?: Fields): void };
}

export interface LogOptions {
  verbosity: number;
  json: boolean;
  /** Defaults to stderr, as klog. */
  stream?: NodeJS.WritableStream;
  /**
   * Where klog prints `file:line]`: the command (serve, provider). The shipped bundle has no
   * meaningful file and line, and finding them cost a stack trace per line.
   */
  name?: string;
}

const SEVERITY: Record<string, string> = { error: 'E', warn: 'W', info: 'I' };

function klogTime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getMonth() + 1)}${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}000`;
}

function quote(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** A message with text from outside (a provider's version, say) cannot start a line of its own. */
function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1));
}

const klogFormat = winston.format.printf((info) => {
  const { level, message, caller, fields } = info as unknown as {
    level: string;
    message: string;
    caller: string;
    fields?: Fields;
  };
  const head = `${SEVERITY[level] ?? 'I'}${klogTime(new Date())} ${String(process.pid).padStart(7)} ${caller}]`;
  const entries = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return `${head} ${oneLine(message)}`;
  return `${head} ${quote(message)} ${entries.map(([k, v]) => `${k}=${quote(v)}`).join(' ')}`;
});

const jsonFormat = winston.format.printf((info) => {
  const { level, message, caller, fields } = info as unknown as {
    level: string;
    message: string;
    caller: string;
    fields?: Fields;
  };
  return JSON.stringify({ ts: new Date().toISOString(), level, caller, msg: message, ...fields });
});

export function createLogger(opts: LogOptions): Logger {
  const w = winston.createLogger({
    level: 'info',
    format: opts.json ? jsonFormat : klogFormat,
    transports: [new winston.transports.Stream({ stream: opts.stream ?? process.stderr })],
  });
  const caller = opts.name ?? 'cce-secrets-manager';
  const emit = (level: string) => (msg: string, fields?: Fields) => w.log({ level, message: msg, caller, fields });
  const silent = { info: () => undefined };
  const logger: Logger = {
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    v: (level) => (level <= opts.verbosity ? { info: emit('info') } : silent),
  };
  return logger;
}
