/**
 * The TLS key, certificate and CA files, read and checked while the configuration is validated:
 * a missing file, one that is not PEM, or a key that does not match its certificate is a
 * configuration error naming the flag (or env variable), not a stack trace once listeners start.
 */
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { caProblem, tlsMaterialProblem } from "../transport/TlsListener.ts"
import { ConfigError } from "./ConfigError.ts"
import type { Given } from "./Settings.ts"
import { describeFileProblem } from "./FileProblem.ts"


const read = (key: "tlsKey" | "tlsCert" | "tlsCa", path: string, given: Given | undefined) =>
  Effect.try({
    try: () => readFileSync(path, "utf8"),
    catch: (cause) => new ConfigError({ keys: [key], message: `${given?.shown ?? path} cannot be read: ${describeFileProblem(cause)}` })
  })

/** Reads both files and checks that they can serve TLS together. */
export const load = Effect.fnUntraced(function*(
  paths: { readonly key: string; readonly cert: string },
  given: { readonly key: Given | undefined; readonly cert: Given | undefined }
) {
  const key = yield* read("tlsKey", paths.key, given.key)
  const cert = yield* read("tlsCert", paths.cert, given.cert)
  const problem = tlsMaterialProblem(key, cert)
  if (problem !== undefined) {
    const names = `${given.key?.shown ?? paths.key} and ${given.cert?.shown ?? paths.cert}`
    return yield* new ConfigError({ keys: ["tlsKey", "tlsCert"], message: `${names} cannot serve TLS: ${problem.split("\n")[0]}` })
  }
  return { key, cert }
})

/** Reads the CA bundle client certificates must chain to (`--tls-ca`) and checks that it is PEM. */
export const loadCa = Effect.fnUntraced(function*(path: string, given: Given | undefined) {
  const ca = yield* read("tlsCa", path, given)
  const problem = caProblem(ca)
  if (problem !== undefined) {
    return yield* new ConfigError({ keys: ["tlsCa"], message: `${given?.shown ?? path} cannot verify client certificates: ${problem}` })
  }
  return ca
})
