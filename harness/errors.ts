/** A mistake in what the user asked for: reported in one line, exit code 2. */
export class UsageError extends Error {}
