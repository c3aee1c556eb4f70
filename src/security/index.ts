export { Security } from './security.js';
export { PrincipalRights } from './principal-rights.js';
export { OriginPolicy } from './origin-policy.js';
export type { PrincipalQuota } from './quotas.js';
export { CLUSTER, topicResource, groupResource, type AccessNeed, type Resource } from './access-control.js';
export { hashPassword } from './password-hash.js';
export { anonymousPrincipal, type Principal } from './principal.js';
export { SecuritySettingError } from './security-setting-error.js';
