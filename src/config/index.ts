export {
  topicName,
  topicSettings,
  topicSettingsChange,
  TOPIC_NAME_PATTERN,
  type TopicSettings,
  type RillConfig,
  type RillConfigInput,
  type StompConfig,
  type StorageConfig,
  type AuthConfig,
  type TlsConfig,
  type AclRule,
  type AclOperation,
} from './schema.js';
export { loadConfig, parseConfig, resolveDataDir, isLoopback, ConfigError, DEFAULT_CONFIG_FILE, type ConfigOverrides } from './load.js';
