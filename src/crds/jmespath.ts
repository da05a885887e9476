// jmesPath entries are expressions a namespace user writes, evaluated on the node: each has
// a budget. Its shape is checked wherever the SPC is parsed (mount, rotation, the provider
// command, the webhook, `mount --dry-run`): the result may hold at most MAX_COPIES copies of
// its input, since `[@,@]` doubles it and a pipe of such lists doubles it again. Evaluation
// then runs under a time budget shared by the volume, and its result must fit the file limit.
import { createContext, Script } from 'node:vm';
import jmespath from 'jmespath';
import { InvalidSpcError, TooLargeError } from '../errors.js';

/** The most copies of its input an expression's result may hold (a hash of 64 fields of `@`). */
export const MAX_COPIES = 64;

interface AstNode {
  type: string;
  children?: AstNode[];
  value?: unknown;
  name?: string;
}

/** An upper bound of a result's JSON size: `copies` × the input's size + `bytes`. */
interface Growth {
  copies: number;
  bytes: number;
}

const ONE: Growth = { copies: 1, bytes: 0 };
const constant = (bytes: number): Growth => ({ copies: 0, bytes });
const sum = (gs: Growth[], bytes = 0): Growth =>
  gs.reduce((a, g) => ({ copies: a.copies + g.copies, bytes: a.bytes + g.bytes }), constant(bytes));
const max = (gs: Growth[]): Growth => ({
  copies: Math.max(0, ...gs.map((g) => g.copies)),
  bytes: Math.max(0, ...gs.map((g) => g.bytes)),
});
/** `outer` applied to the result of `inner`. */
const compose = (inner: Growth, outer: Growth): Growth => ({
  copies: inner.copies * outer.copies,
  bytes: outer.copies * inner.bytes + outer.bytes,
});
/** `each` applied to every element of `list`: an element's own constant bytes and comma count per element. */
const perElement = (list: Growth, each: Growth): Growth =>
  compose(list, { copies: each.copies + each.bytes + 1, bytes: 0 });

/** Where an `&expression` may stand: an argument its function evaluates rather than returns. */
const REFERENCE_ARGUMENT: Record<string, number> = { map: 0, sort_by: 1, max_by: 1, min_by: 1 };
const UNBOUNDED: Growth = { copies: Infinity, bytes: 0 };
const utf8 = (v: unknown) => Buffer.byteLength(JSON.stringify(v ?? null), 'utf8');

/**
 * The growth of the result of `node`, relative to its input; `walk.peak` keeps the most
 * copies any part of the expression makes of its own input, since a part whose value is
 * thrown away (inside `length`, a comparison, a filter or a sort key) is still built first.
 */
function growth(node: AstNode, walk: { peak: number }): Growth {
  const g = growthOf(node, (kid) => growth(kid, walk));
  walk.peak = Math.max(walk.peak, g.copies);
  return g;
}

function growthOf(node: AstNode, of: (kid: AstNode) => Growth): Growth {
  const kids = node.children ?? [];
  switch (node.type) {
    case 'Literal':
      return constant(utf8(node.value));
    case 'Field':
    case 'Current':
    case 'Identity':
    case 'Index':
    case 'Slice':
      return ONE;
    case 'Subexpression':
    case 'Pipe':
    case 'IndexExpression':
      return compose(of(kids[0]), of(kids[1]));
    case 'Projection':
    case 'ValueProjection':
    case 'FilterProjection':
      if (kids[2]) of(kids[2]); // the filter's condition, built for every element
      return perElement(of(kids[0]), of(kids[1]));
    case 'MultiSelectList':
      return sum(kids.map(of), kids.length + 1);
    case 'MultiSelectHash':
      return sum(
        kids.map((kv) => of(kv.value as AstNode)),
        2 + kids.reduce((n, kv) => n + utf8(kv.name ?? '') + 1, 0),
      );
    case 'OrExpression':
    case 'AndExpression':
      return max(kids.map(of));
    case 'NotExpression':
    case 'Comparator':
      kids.forEach(of);
      return constant(5);
    case 'Function': {
      const ref = REFERENCE_ARGUMENT[node.name ?? ''];
      const args = kids.map((kid, i) =>
        i === ref && kid.type === 'ExpressionReference' ? of(kid.children![0]) : of(kid),
      );
      return functionGrowth(node.name ?? '', args);
    }
    case 'ExpressionReference':
      // Anywhere else, its value is the expression's syntax tree, as large as it likes.
      return UNBOUNDED;
    default:
      // Flatten and anything else: no more than its parts.
      return kids.length > 0 ? sum(kids.map(of)) : ONE;
  }
}

function functionGrowth(name: string, args: Growth[]): Growth {
  switch (name) {
    case 'to_string':
      // JSON escapes a quote or backslash as two characters: a nested to_string doubles.
      return compose(args[0] ?? ONE, { copies: 2, bytes: 2 });
    case 'join': {
      const [sep, list] = args;
      // A separator taken from the input would repeat the input once per element.
      if (!sep || !list || sep.copies > 0) return UNBOUNDED;
      return perElement(list, constant(sep.bytes));
    }
    case 'map':
      return perElement(args[1] ?? ONE, args[0] ?? ONE);
    case 'sort_by':
    case 'max_by':
    case 'min_by':
      return args[0] ?? ONE;
    case 'length':
    case 'type':
    case 'abs':
    case 'ceil':
    case 'floor':
    case 'sum':
    case 'avg':
    case 'contains':
    case 'starts_with':
    case 'ends_with':
      return constant(32);
    default:
      return sum(args, 2);
  }
}

/**
 * The growth of a jmesPath path's result, with `peak` the most copies of its input that any
 * part of it builds; undefined when it is not an expression (an exact key only).
 */
export function expressionGrowth(path: string): (Growth & { peak: number }) | undefined {
  let ast: AstNode;
  try {
    ast = (jmespath as unknown as { compile(expression: string): AstNode }).compile(path);
  } catch {
    return undefined;
  }
  const walk = { peak: 0 };
  const result = growth(ast, walk);
  return { ...result, peak: walk.peak };
}

/** Refuses, when the SPC is parsed, an expression any part of which could build more than MAX_COPIES copies of its input. */
export function checkExpressionShape(path: string, field: string, fail: (what: string) => InvalidSpcError): void {
  const g = expressionGrowth(path);
  if (!g || g.peak <= MAX_COPIES) return;
  const times = Number.isFinite(g.peak) ? `up to ${g.peak} copies` : 'an unbounded number of copies';
  throw fail(
    `${field}.path ${JSON.stringify(path)} could build ${times} of the secret's value; at most ${MAX_COPIES} are allowed (each [@, @] or {a: @, b: @} multiplies what the expression before it made, and an &expression may only be the argument of map, sort_by, max_by or min_by); select the fields you need instead`,
  );
}

/** The time jmesPath evaluations of one volume may take together, and the size of each result. */
export interface JmesPathLimits {
  budgetMs: number;
  maxFileBytes: number;
}

const sandbox = createContext({});
const evaluate = new Script('run()');

/**
 * Evaluates the entries of one volume: each call spends from the volume's time budget,
 * and stops (Node's vm timeout interrupts any JavaScript, ours included) when it is spent.
 */
export class JmesPathEvaluator {
  private spentMs = 0;

  constructor(private readonly limits: JmesPathLimits) {}

  /**
   * One entry's file from a secret's parsed JSON value (`valueBytes` long). Exact top-level
   * keys win, so keys with characters JMESPath would read as operators (+ - {} ()) work as written.
   */
  extract(where: string, path: string, json: unknown, valueBytes: number): Buffer {
    if (json !== null && typeof json === 'object' && !Array.isArray(json) && Object.hasOwn(json, path)) {
      return this.fit(where, path, (json as Record<string, unknown>)[path], () => undefined);
    }
    const g = expressionGrowth(path) ?? { ...ONE, peak: 1 };
    // What the largest part builds, not only the result: a part thrown away is built first.
    const bound = Math.max(g.copies, g.peak) * valueBytes + g.bytes;
    if (bound > 4 * this.limits.maxFileBytes) {
      throw new TooLargeError(
        `${where}: jmesPath ${JSON.stringify(path)} could build values of up to ${bound} bytes from this ${valueBytes}-byte value, over 4 times the file limit of ${this.limits.maxFileBytes} bytes; select less`,
      );
    }
    return this.fit(where, path, undefined, () => jmespath.search(json, path) as unknown);
  }

  private fit(where: string, path: string, picked: unknown, search: () => unknown): Buffer {
    const overTime = () =>
      new TooLargeError(
        `${where}: jmesPath ${JSON.stringify(path)} took longer than the ${this.limits.budgetMs} ms the volume's expressions may take together; simplify it`,
      );
    const left = Math.floor(this.limits.budgetMs - this.spentMs);
    if (left < 1) throw overTime();
    const t0 = performance.now();
    let text: string | undefined;
    try {
      sandbox.run = () => {
        const result = picked ?? search();
        if (result !== null && result !== undefined)
          text = typeof result === 'string' ? result : JSON.stringify(result);
      };
      evaluate.runInContext(sandbox, { timeout: left });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw overTime();
      // A syntax or type error in the expression selects nothing, as a missing key does.
    } finally {
      sandbox.run = undefined;
      this.spentMs += performance.now() - t0;
    }
    if (text === undefined) {
      throw new InvalidSpcError(
        `${where}: jmesPath "${path}" selects nothing in the secret's JSON value; check the key`,
      );
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.limits.maxFileBytes) {
      throw new TooLargeError(
        `${where}: jmesPath ${JSON.stringify(path)} makes a file of ${bytes} bytes, over the file limit of ${this.limits.maxFileBytes} bytes (--max-file-bytes); select less`,
      );
    }
    return Buffer.from(text, 'utf8');
  }
}
