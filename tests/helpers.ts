/** The error `fn` throws, checked to be a `type`; fails when it throws nothing or something else. */
export function thrown<T extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => T): T {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return e;
    throw new Error(`expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  throw new Error(`expected ${type.name}, but nothing was thrown`);
}
