/**
 * `--max-auth-failure-rate` at the door: an address whose failed authentications have emptied its
 * bucket (`ConnectRate.spend` at each failure) has its new connections closed unread until the
 * bucket refills, with one warning line a second per address saying how many were closed.
 */
import type { ConnectRate } from "./ConnectRate.ts"

/** The warning logged at most once a second for an address shut out. */
export const shutOutLine = (address: string, limit: number, closed: number): string =>
  `closing connections from ${address} unread: over --max-auth-failure-rate ${limit} failed authentications a second (${closed} closed since the last such line)`

/**
 * Whether a new connection from `address` is served: synchronous, so it can run where the
 * connection is accepted, before anything is allocated for it. `now` reads the broker's clock.
 */
export const gate = (
  failures: ConnectRate,
  limit: number,
  now: () => number,
  warn: (line: string) => void
) =>
(address: string): boolean => {
  const verdict = failures.check(address, now())
  if (verdict.allowed) return true
  if (verdict.report !== undefined) warn(shutOutLine(address, limit, verdict.report))
  return false
}
