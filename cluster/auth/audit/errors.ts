import { PosternError } from '../../../protocols/errors.ts';

/** The stream an export was writing to closed before the export finished. */
export class AuditExportError extends PosternError {
  constructor(message: string) {
    super('PST_AUDIT_EXPORT', message);
  }
}
