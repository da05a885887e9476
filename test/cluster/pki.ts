// Test certificates, made with openssl in a folder of the caller's: a CA, and leaves it signs.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyPair {
  key: string;
  cert: string;
}

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A self-signed CA, `<name>.key` and `<name>.crt` in `dir`. */
export function makeCa(dir: string, name: string): KeyPair {
  const [key, cert] = [`${name}.key`, `${name}.crt`];
  openssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  );
  return { key: join(dir, key), cert: join(dir, cert) };
}

/** A key and a certificate for `cn` signed by `ca`, with subjectAltNames such as `IP:10.0.0.1`. */
export function signLeaf(dir: string, ca: KeyPair, name: string, cn: string, altNames: string[] = []): KeyPair {
  const [key, cert, csr, ext] = ['key', 'crt', 'csr', 'ext'].map((suffix) => `${name}.${suffix}`);
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`);
  const extensions: string[] = [];
  if (altNames.length > 0) {
    writeFileSync(join(dir, ext), `subjectAltName=${altNames.join(',')}\n`);
    extensions.push('-extfile', ext);
  }
  const signing = ['-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2'];
  openssl(dir, 'x509', '-req', '-in', csr, ...signing, ...extensions, '-out', cert);
  return { key: join(dir, key), cert: join(dir, cert) };
}
