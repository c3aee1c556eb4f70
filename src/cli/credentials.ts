/** How a CLI command logs in to a broker that has authentication on. */
export interface CliCredentials {
  /** STOMP CONNECT headers. */
  connectHeaders: Record<string, string>;
  /** The HTTP Authorization header, if any. */
  authorization: string | undefined;
}

/**
 * Credentials from `--user` (or RILL_USER) with RILL_PASSWORD, or a token in RILL_TOKEN. The
 * password and the token are read from the environment only, never from a flag, so that they do
 * not show in the process list or the shell's history.
 */
export function cliCredentials(user: string | undefined, env: NodeJS.ProcessEnv = process.env): CliCredentials {
  const token = env.RILL_TOKEN;
  if (token !== undefined && token !== '') return { connectHeaders: { passcode: token }, authorization: `Bearer ${token}` };
  const login = user ?? env.RILL_USER;
  if (login === undefined || login === '') return { connectHeaders: {}, authorization: undefined };
  const password = env.RILL_PASSWORD ?? '';
  return {
    connectHeaders: { login, passcode: password },
    authorization: `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`,
  };
}
