// The webhook's HTTPS endpoint: AdmissionReview in, verdict out, for SecretProviderClasses
// and ServiceAccounts; /metrics and /healthz beside it. The serving certificate (and the
// client CA) are read again whenever their files change (a renewed Secret, cert-manager),
// without a restart. With a client CA, only a caller holding a certificate it signed (the
// API server, as its AdmissionConfiguration says) gets a review.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type * as k8s from '@kubernetes/client-node';
import { Counter, Histogram, Registry } from 'prom-client';
import type { SecretProviderClass, SecretSync } from '../crds/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { reviewSecretSync, reviewServiceAccount, reviewSpc, type SpcReviewContext, type Verdict } from './review.js';
import { readBody } from '../util/read-body.js';

/** The API server sends whole objects; an SPC or ServiceAccount is far smaller than this. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const REVIEWED_KINDS = new Set(['SecretProviderClass', 'ServiceAccount', 'SecretSync']);

interface AdmissionRequest {
  uid: string;
  kind?: { kind?: string };
  operation?: string;
  /** The namespace the API server admits the object into (the object's own field may be unset). */
  namespace?: string;
  object?: unknown;
  oldObject?: unknown;
}

export interface AdmissionServerOptions {
  certFile: string;
  keyFile: string;
  /** CA (PEM) of the client certificates allowed to ask for reviews; unset: anyone may. */
  clientCaFile?: string;
  /** What the reviews read and follow (the driver's settings, the cluster). */
  context: Omit<SpcReviewContext, 'operation'>;
  log: Logger;
  registry?: Registry;
}

export function admissionMetrics(registry: Registry) {
  return {
    reviews: new Counter({
      name: 'admission_reviews_total',
      help: 'Admission reviews by kind and result (allowed, refused, error, unauthenticated)',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'admission_review_duration_seconds',
      help: 'Time to decide one admission review',
      labelNames: ['kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

export class AdmissionServer {
  readonly server: https.Server;
  private readonly registry: Registry;
  private readonly metrics: ReturnType<typeof admissionMetrics>;

  constructor(private readonly opts: AdmissionServerOptions) {
    this.registry = opts.registry ?? new Registry();
    this.metrics = admissionMetrics(this.registry);
    this.server = https.createServer(this.tls(), (req, res) => void this.handle(req, res));
  }

  listen(port: number, host?: string): Promise<number> {
    const reload = () => {
      try {
        this.server.setSecureContext(this.tls());
        this.opts.log.info('Serving certificate reloaded', { cert: this.opts.certFile });
      } catch (err) {
        this.opts.log.error('Reloading the serving certificate failed; the previous one stays', {
          error: errorMessage(err),
        });
      }
    };
    for (const file of this.files) watchFile(file, { interval: 1000 }, reload);
    return new Promise((resolve) =>
      this.server.listen(port, host, () => resolve((this.server.address() as { port: number }).port)),
    );
  }

  close(): Promise<void> {
    for (const file of this.files) unwatchFile(file);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private get files(): string[] {
    const { certFile, keyFile, clientCaFile } = this.opts;
    return clientCaFile ? [certFile, keyFile, clientCaFile] : [certFile, keyFile];
  }

  private tls() {
    const { certFile, keyFile, clientCaFile } = this.opts;
    const served = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    // A certificate is asked for but not required at the handshake: kubelet's probes and
    // Prometheus reach /healthz and /metrics without one; /validate checks it.
    return clientCaFile
      ? { ...served, ca: readFileSync(clientCaFile), requestCert: true, rejectUnauthorized: false }
      : served;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/healthz') return void res.end('ok');
    if (req.method === 'GET' && req.url === '/metrics') {
      res.setHeader('Content-Type', this.registry.contentType);
      return void res.end(await this.registry.metrics());
    }
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/validate') {
      res.statusCode = 404;
      return void res.end();
    }
    if (this.opts.clientCaFile && !(req.socket as TLSSocket).authorized) {
      this.metrics.reviews.inc({ kind: 'other', result: 'unauthenticated' });
      res.statusCode = 403;
      return void res.end('a client certificate signed by the --client-ca is required');
    }
    let request: AdmissionRequest | undefined;
    try {
      request = (JSON.parse(await readBody(req, MAX_BODY_BYTES)) as { request?: AdmissionRequest }).request;
    } catch (err) {
      res.statusCode = 400;
      return void res.end(`not an AdmissionReview: ${errorMessage(err)}`);
    }
    if (!request?.uid) {
      res.statusCode = 400;
      return void res.end('not an AdmissionReview: request.uid is missing');
    }
    let verdict: Verdict;
    try {
      verdict = await this.review(request);
    } catch (err) {
      // Reading the cluster failed: an error status lets the API server apply the
      // webhook's failurePolicy (Ignore by default; mount time still checks everything).
      res.statusCode = 500;
      return void res.end(`cce-secrets-manager webhook could not decide: ${errorMessage(err)}`);
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: answer(request, verdict),
      }),
    );
  }

  private async review(request: AdmissionRequest): Promise<Verdict> {
    const kind = request.kind?.kind ?? '';
    // Whoever calls the webhook chooses the kind: only the ones it reviews become labels.
    const label = REVIEWED_KINDS.has(kind) ? kind : 'other';
    const end = this.metrics.duration.startTimer({ kind: label });
    let verdict: Verdict;
    // The reviews read the object's namespace: the API server's word for it is the one that counts.
    const meta = (request.object as { metadata?: { namespace?: string } } | undefined)?.metadata;
    if (meta && request.namespace) meta.namespace = request.namespace;
    try {
      if (kind === 'SecretProviderClass' && (request.operation === 'CREATE' || request.operation === 'UPDATE')) {
        const ctx: SpcReviewContext = { ...this.opts.context, operation: request.operation };
        verdict = await reviewSpc(request.object as SecretProviderClass, ctx);
      } else if (kind === 'ServiceAccount') {
        const [sa, old] = [request.object, request.oldObject] as (k8s.V1ServiceAccount | undefined)[];
        verdict = await reviewServiceAccount(sa!, this.opts.context, old ?? undefined);
      } else if (kind === 'SecretSync' && (request.operation === 'CREATE' || request.operation === 'UPDATE')) {
        verdict = reviewSecretSync(request.object as SecretSync, request.oldObject as SecretSync | undefined);
      } else {
        verdict = { allowed: true, warnings: [] };
      }
      this.metrics.reviews.inc({ kind: label, result: verdict.allowed ? 'allowed' : 'refused' });
    } catch (err) {
      this.metrics.reviews.inc({ kind: label, result: 'error' });
      this.opts.log.error('Admission review failed', { kind: label, error: errorMessage(err) });
      throw err;
    } finally {
      end();
    }
    return verdict;
  }
}

function answer(request: AdmissionRequest, verdict: Verdict) {
  return {
    uid: request.uid,
    allowed: verdict.allowed,
    ...(verdict.allowed ? {} : { status: { code: 422, reason: 'Invalid', message: verdict.message } }),
    ...(verdict.warnings.length > 0 ? { warnings: verdict.warnings } : {}),
  };
}
