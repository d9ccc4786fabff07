/** Why a file named in the configuration cannot be read, in the words an operator acts on. */
import { Predicate } from "effect"

/** The usual reasons by their errno code (missing, not allowed, a directory), else the error's own message. */
export const describeFileProblem = (cause: unknown): string => {
  switch (Predicate.hasProperty(cause, "code") ? cause.code : undefined) {
    case "ENOENT":
      return "no such file"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EISDIR":
      return "is a directory"
    default:
      return Predicate.isError(cause) ? cause.message : String(cause)
  }
}
