/**
 * How the node entrypoint writes its log lines (`--log-format`): logfmt for a person at a
 * terminal, JSON lines for a log collector (journald, Docker, Kubernetes), as the issue of
 * operators asks; `pretty` is Effect's coloured console format. Every line carries the log
 * annotations — client id, remote address, protocol version, reason code on connection events.
 */
import { Layer, Logger } from "effect"
import type { LogFormat } from "../config/Settings.ts"

/** The format actually used: `auto` is logfmt on a terminal, JSON lines otherwise. */
export const resolve = (format: LogFormat, stdoutIsTty: boolean): Exclude<LogFormat, "auto"> =>
  format === "auto" ? (stdoutIsTty ? "logfmt" : "json") : format

/** The logger Layer for a resolved format, replacing Effect's default logger. */
export const layer = (format: Exclude<LogFormat, "auto">): Layer.Layer<never> =>
  Logger.layer([format === "json" ? Logger.consoleJson : format === "logfmt" ? Logger.consoleLogFmt : Logger.consolePretty()])
