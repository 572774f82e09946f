import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/**
 * Field paths that may carry secrets. pino replaces them before a line is written,
 * so a careless `log.info({ req })` cannot leak a password or a private key.
 */
const redactedPaths = [
  'password', '*.password', 'token', '*.token', 'privateKey', '*.privateKey',
  'totp', '*.totp', 'secret', '*.secret', 'authorization', '*.authorization',
  'headers.authorization', 'headers.cookie', '*.headers.cookie',
];

/** Creates the structured JSON logger a daemon writes to stderr (or `destination`). */
export function createLogger(options: { level?: LogLevel; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? (process.env.POSTERN_LOG_LEVEL as LogLevel | undefined) ?? 'info',
      name: options.name ?? 'postern',
      redact: { paths: redactedPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything; for tests and quiet CLIs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
