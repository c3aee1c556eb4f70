/**
 * A start-up that failed for a reason the operator can fix with a setting (a port in use, a data
 * directory that cannot be written or that another broker holds). Everything that had started is
 * stopped again before it is thrown.
 */
export class StartupError extends Error {
  constructor(
    /** What is wrong: "port 8080 is in use". */
    readonly problem: string,
    /** The configuration key that fixes it: "server.httpPort". */
    readonly setting: string,
    /** A fix other than changing the setting: "stop that broker". */
    readonly alternative?: string,
    /** Said after the fixes: "(if no broker runs there, delete /data/.lock)". */
    readonly note?: string,
  ) {
    super(`${problem}: ${alternative === undefined ? '' : `${alternative}, or `}set ${setting}${note === undefined ? '' : ` ${note}`}`);
    this.name = 'StartupError';
  }
}
