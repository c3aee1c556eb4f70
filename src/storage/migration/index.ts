export { assertCurrentDataFormat, checkDataFormat, LegacyDataFormatError } from './data-format.js';
export { migrateDataDirectory, type MigrationReport, type MigrationStep } from './migrate.js';
