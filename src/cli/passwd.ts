import readline from 'node:readline';
import { hashPassword } from '../security/index.js';

const USAGE = `Usage: rill passwd
  Reads a password on standard input (typed, without echo, at a terminal; or piped:
  printf %s "$PASSWORD" | rill passwd) and prints its scrypt hash, to paste into the config as a
  user's passwordHash in auth.users. The password itself is never stored.
`;

/** `rill passwd`: a password in, its hash out. */
export async function runPasswd(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`rill passwd: takes no arguments (the password is read on standard input, never from the command line)\n\n${USAGE}`);
    return 2;
  }
  const password = process.stdin.isTTY ? await promptHidden('Password: ') : await readPiped();
  if (password.length === 0) {
    process.stderr.write('rill passwd: the password is empty\n');
    return 1;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

/** The piped input, without the newline that `echo` adds. */
async function readPiped(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Reads one line at the terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const output = rl as unknown as { _writeToOutput: (text: string) => void };
  process.stderr.write(prompt);
  output._writeToOutput = () => {};
  return new Promise((resolve) => {
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
