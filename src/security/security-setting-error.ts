/** A security setting that cannot be used as it is: `setting` names the key to fix. */
export class SecuritySettingError extends Error {
  constructor(
    readonly problem: string,
    readonly setting: string,
  ) {
    super(`${problem} (${setting})`);
    this.name = 'SecuritySettingError';
  }
}
