/**
 * The stored form of sessions and messages: a versioned JSON text described by effect `Schema`,
 * so any persistent `SessionStateProvider` (SQLite here, Redis or a file elsewhere) writes the
 * same bytes and refuses the same corrupt ones. Payloads and correlation data are base64,
 * subscriptions an array of `[filter, options]`, the queue an array oldest first.
 *
 * Every text carries its format version (`{"v":1,...}`): a reader meets an unknown version with a
 * `SessionCodecError` instead of guessing, and a later version can add a decoder for version 1.
 *
 * Ground floor: imports nothing from outside `src/session`.
 */
import { Cause, Data, Effect, Exit, Schema, SchemaGetter } from "effect"
import type { Message } from "./Message.ts"
import { MessageQueue } from "./MessageQueue.ts"
import type { InflightMessage, SessionState, Subscription } from "./SessionState.ts"

/** The format version this module writes (and the only one it reads so far). */
export const VERSION = 1

/** A stored text that is not a session or message of a known format version. */
export class SessionCodecError extends Data.TaggedError("SessionCodecError")<{
  /** What was being decoded: "session" or "message". */
  readonly kind: "session" | "message"
  /** Why it could not be read, in one line. */
  readonly reason: string
}> {
  override get message(): string {
    return `cannot decode a stored ${this.kind}: ${this.reason}`
  }
}

const QoS = Schema.Literals([0, 1, 2])

const UserProperty = Schema.Tuple([Schema.String, Schema.String])

/** MQTT 5 properties a message carries, as stored. */
const PublishProperties = Schema.Struct({
  payloadFormatIndicator: Schema.optionalKey(Schema.Boolean),
  contentType: Schema.optionalKey(Schema.String),
  responseTopic: Schema.optionalKey(Schema.String),
  correlationData: Schema.optionalKey(Schema.Uint8ArrayFromBase64),
  userProperties: Schema.optionalKey(Schema.Array(UserProperty))
})

/** A `Message` as stored: payload and correlation data in base64. */
export const MessageSchema = Schema.Struct({
  topic: Schema.String,
  payload: Schema.Uint8ArrayFromBase64,
  qos: QoS,
  retain: Schema.Boolean,
  properties: Schema.optional(PublishProperties),
  expiresAt: Schema.optional(Schema.Number),
  subscriptionIds: Schema.optional(Schema.Array(Schema.Number))
})

const SubscriptionSchema = Schema.Struct({
  qos: QoS,
  noLocal: Schema.optional(Schema.Boolean),
  retainAsPublished: Schema.optional(Schema.Boolean),
  retainHandling: Schema.optional(Schema.Literals([0, 1, 2])),
  identifier: Schema.optional(Schema.Number)
})

const InflightSchema = Schema.Struct({
  packetId: Schema.Number,
  message: MessageSchema,
  stage: Schema.Literals(["puback", "pubrec", "pubcomp"]),
  awaitingResend: Schema.optional(Schema.Literal(true))
})

/** Subscriptions stored as `[filter, options]` pairs, a `ReadonlyMap` in memory. */
const Subscriptions = Schema.Array(Schema.Tuple([Schema.String, SubscriptionSchema])).pipe(
  Schema.decodeTo(Schema.instanceOf(Map<string, Subscription>) as Schema.instanceOf<ReadonlyMap<string, Subscription>>, {
    decode: SchemaGetter.transform((entries) => new Map(entries)),
    encode: SchemaGetter.transform((map) => Array.from(map))
  })
)

/** The queue stored as an array, oldest first. */
const Queue = Schema.Array(MessageSchema).pipe(
  Schema.decodeTo(Schema.declare((u): u is MessageQueue => u instanceof MessageQueue), {
    decode: SchemaGetter.transform((messages) => MessageQueue.from(messages)),
    encode: SchemaGetter.transform((queue) => queue.toArray())
  })
)

/** A `SessionState` as stored (without the version envelope). */
export const SessionStateSchema = Schema.Struct({
  clientId: Schema.String,
  clean: Schema.Boolean,
  expiryInterval: Schema.Number,
  subscriptions: Subscriptions,
  inflight: Schema.Array(InflightSchema),
  queue: Queue,
  dropped: Schema.Number,
  awaitingPubrel: Schema.Array(Schema.Number),
  nextPacketId: Schema.Number,
  will: Schema.optional(MessageSchema),
  willDelayInterval: Schema.Number,
  willAt: Schema.optional(Schema.Number),
  receiveMaximum: Schema.Number,
  maximumPacketSize: Schema.optional(Schema.Number),
  disconnectedAt: Schema.optional(Schema.Number)
})

const SessionEnvelope = Schema.Struct({ v: Schema.Literal(VERSION), session: SessionStateSchema })
const MessageEnvelope = Schema.Struct({ v: Schema.Literal(VERSION), message: MessageSchema })

const decodeSessionEnvelope = Schema.decodeUnknownExit(SessionEnvelope)
const decodeMessageEnvelope = Schema.decodeUnknownExit(MessageEnvelope)

const versionOf = (value: unknown): unknown =>
  typeof value === "object" && value !== null && "v" in value ? (value as { v: unknown }).v : undefined

const decodeText = <A>(
  kind: "session" | "message",
  text: string,
  decode: (value: unknown) => Exit.Exit<{ readonly v: number } & Record<typeof kind, A>, unknown>
): A => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new SessionCodecError({ kind, reason: `not JSON (${error instanceof Error ? error.message : String(error)})` })
  }
  const version = versionOf(value)
  if (version !== VERSION) {
    throw new SessionCodecError({ kind, reason: `unknown format version ${JSON.stringify(version) ?? "(none)"}` })
  }
  const exit = decode(value)
  if (Exit.isSuccess(exit)) return exit.value[kind]
  const error = Cause.squash(exit.cause as Cause.Cause<unknown>)
  throw new SessionCodecError({ kind, reason: (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim() })
}

/** The Schema's encoded form of `SessionStateSchema` / `MessageSchema`. */
type StoredSession = typeof SessionStateSchema.Encoded
type StoredMessage = typeof MessageSchema.Encoded

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/** Encoded messages by identity: a message fanned out to many sessions is encoded once. */
const storedMessages = new WeakMap<Message, StoredMessage>()

/**
 * What `Schema.encodeSync(MessageSchema)` returns, written out by hand because it runs for every
 * stored message (the codec's test checks the two agree, key order included). Encoding cannot
 * fail: every `Message` has a stored form.
 */
const toStoredMessage = (message: Message): StoredMessage => {
  const cached = storedMessages.get(message)
  if (cached !== undefined) return cached
  const p = message.properties
  const stored: { -readonly [K in keyof StoredMessage]: StoredMessage[K] } = {
    topic: message.topic,
    payload: base64(message.payload),
    qos: message.qos,
    retain: message.retain
  }
  if (p !== undefined) {
    const properties: { -readonly [K in keyof NonNullable<StoredMessage["properties"]>]: NonNullable<StoredMessage["properties"]>[K] } = {}
    if (p.payloadFormatIndicator !== undefined) properties.payloadFormatIndicator = p.payloadFormatIndicator
    if (p.contentType !== undefined) properties.contentType = p.contentType
    if (p.responseTopic !== undefined) properties.responseTopic = p.responseTopic
    if (p.correlationData !== undefined) properties.correlationData = base64(p.correlationData)
    if (p.userProperties !== undefined) properties.userProperties = p.userProperties.map(([k, v]) => [k, v] as const)
    stored.properties = properties
  }
  if (message.expiresAt !== undefined) stored.expiresAt = message.expiresAt
  if (message.subscriptionIds !== undefined) stored.subscriptionIds = message.subscriptionIds
  storedMessages.set(message, stored)
  return stored
}

/** What `Schema.encodeSync(SessionStateSchema)` returns, by hand for the same reason (checked by the test). */
const toStoredSession = (state: SessionState): StoredSession => ({
  clientId: state.clientId,
  clean: state.clean,
  expiryInterval: state.expiryInterval,
  subscriptions: Array.from(state.subscriptions, ([filter, s]) => [filter, { ...s }] as const),
  inflight: state.inflight.map((e) => ({
    packetId: e.packetId,
    message: toStoredMessage(e.message),
    stage: e.stage,
    ...(e.awaitingResend === undefined ? {} : { awaitingResend: e.awaitingResend })
  })),
  queue: state.queue.toArray().map(toStoredMessage),
  dropped: state.dropped,
  awaitingPubrel: state.awaitingPubrel,
  nextPacketId: state.nextPacketId,
  ...(state.will === undefined ? {} : { will: toStoredMessage(state.will) }),
  willDelayInterval: state.willDelayInterval,
  ...(state.willAt === undefined ? {} : { willAt: state.willAt }),
  receiveMaximum: state.receiveMaximum,
  ...(state.maximumPacketSize === undefined ? {} : { maximumPacketSize: state.maximumPacketSize }),
  ...(state.disconnectedAt === undefined ? {} : { disconnectedAt: state.disconnectedAt })
})

/** A session as stored text (the current format version). */
export const encodeSession = (state: SessionState): string => JSON.stringify({ v: VERSION, session: toStoredSession(state) })

/** Canonical base64 (padded, standard alphabet): what `base64` writes, and all the fast path reads. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const fromBase64 = (text: unknown): Uint8Array | undefined => {
  if (typeof text !== "string" || !BASE64.test(text)) return undefined
  const bytes = Buffer.from(text, "base64")
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * What `MessageSchema` decodes a parsed stored message to, written out by hand because it runs
 * for every message a cluster node receives and every message of a session read back; only for
 * the form `toStoredMessage` writes. Anything else — a type that differs, base64 that is not
 * canonical — is `undefined`, and the Schema decides (with its error). The codec's property test
 * checks the two agree.
 */
const fromStoredMessage = (value: unknown): Message | undefined => {
  if (!isRecord(value)) return undefined
  const { topic, qos, retain, properties, expiresAt, subscriptionIds } = value
  const payload = fromBase64(value.payload)
  if (typeof topic !== "string" || payload === undefined || (qos !== 0 && qos !== 1 && qos !== 2) || typeof retain !== "boolean") return undefined
  const message: { -readonly [K in keyof Message]: Message[K] } = { topic, payload, qos, retain }
  if (properties !== undefined) {
    if (!isRecord(properties)) return undefined
    const decoded: { -readonly [K in keyof NonNullable<Message["properties"]>]: NonNullable<Message["properties"]>[K] } = {}
    const { payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties } = properties
    if (payloadFormatIndicator !== undefined) {
      if (typeof payloadFormatIndicator !== "boolean") return undefined
      decoded.payloadFormatIndicator = payloadFormatIndicator
    }
    if (contentType !== undefined) {
      if (typeof contentType !== "string") return undefined
      decoded.contentType = contentType
    }
    if (responseTopic !== undefined) {
      if (typeof responseTopic !== "string") return undefined
      decoded.responseTopic = responseTopic
    }
    if (correlationData !== undefined) {
      const bytes = fromBase64(correlationData)
      if (bytes === undefined) return undefined
      decoded.correlationData = bytes
    }
    if (userProperties !== undefined) {
      if (!Array.isArray(userProperties)) return undefined
      const pairs: Array<readonly [string, string]> = []
      for (const pair of userProperties) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") return undefined
        pairs.push([pair[0], pair[1]])
      }
      decoded.userProperties = pairs
    }
    message.properties = decoded
  }
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== "number") return undefined
    message.expiresAt = expiresAt
  }
  if (subscriptionIds !== undefined) {
    if (!Array.isArray(subscriptionIds) || !subscriptionIds.every((id) => typeof id === "number")) return undefined
    message.subscriptionIds = subscriptionIds
  }
  return message
}

const isNumber = (value: unknown): value is number => typeof value === "number"
const isStage = (value: unknown): value is InflightMessage["stage"] => value === "puback" || value === "pubrec" || value === "pubcomp"

/** Decodes every element with `f`; `undefined` if one is not decoded (or `value` is no array). */
const everyOf = <A>(value: unknown, f: (element: unknown) => A | undefined): Array<A> | undefined => {
  if (!Array.isArray(value)) return undefined
  const decoded: Array<A> = []
  for (const element of value) {
    const a = f(element)
    if (a === undefined) return undefined
    decoded.push(a)
  }
  return decoded
}

const fromStoredSubscription = (value: unknown): readonly [string, Subscription] | undefined => {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== "string" || !isRecord(value[1])) return undefined
  const { qos, noLocal, retainAsPublished, retainHandling, identifier } = value[1]
  if (qos !== 0 && qos !== 1 && qos !== 2) return undefined
  const subscription: { -readonly [K in keyof Subscription]: Subscription[K] } = { qos }
  if (noLocal !== undefined) {
    if (typeof noLocal !== "boolean") return undefined
    subscription.noLocal = noLocal
  }
  if (retainAsPublished !== undefined) {
    if (typeof retainAsPublished !== "boolean") return undefined
    subscription.retainAsPublished = retainAsPublished
  }
  if (retainHandling !== undefined) {
    if (retainHandling !== 0 && retainHandling !== 1 && retainHandling !== 2) return undefined
    subscription.retainHandling = retainHandling
  }
  if (identifier !== undefined) {
    if (!isNumber(identifier)) return undefined
    subscription.identifier = identifier
  }
  return [value[0], subscription]
}

const fromStoredInflight = (value: unknown): InflightMessage | undefined => {
  if (!isRecord(value) || !isNumber(value.packetId) || !isStage(value.stage)) return undefined
  const message = fromStoredMessage(value.message)
  if (message === undefined) return undefined
  if (value.awaitingResend === undefined) return { packetId: value.packetId, message, stage: value.stage }
  return value.awaitingResend === true ? { packetId: value.packetId, message, stage: value.stage, awaitingResend: true } : undefined
}

/**
 * What `SessionStateSchema` decodes a parsed stored session to, by hand for the reason of
 * `fromStoredMessage` (a persistent provider reads a session back at every change of it); only
 * for the form `toStoredSession` writes, `undefined` for anything else (the Schema decides).
 */
const fromStoredSession = (value: unknown): SessionState | undefined => {
  if (!isRecord(value)) return undefined
  const { clientId, clean, expiryInterval, dropped, nextPacketId, willDelayInterval, receiveMaximum } = value
  if (
    typeof clientId !== "string" || typeof clean !== "boolean" || !isNumber(expiryInterval) || !isNumber(dropped) ||
    !isNumber(nextPacketId) || !isNumber(willDelayInterval) || !isNumber(receiveMaximum)
  ) return undefined
  const subscriptions = everyOf(value.subscriptions, fromStoredSubscription)
  const inflight = everyOf(value.inflight, fromStoredInflight)
  const queue = everyOf(value.queue, fromStoredMessage)
  const awaitingPubrel = everyOf(value.awaitingPubrel, (id) => (isNumber(id) ? id : undefined))
  if (subscriptions === undefined || inflight === undefined || queue === undefined || awaitingPubrel === undefined) return undefined
  const state: Record<string, unknown> = {
    clientId,
    clean,
    expiryInterval,
    subscriptions: new Map(subscriptions),
    inflight,
    queue: MessageQueue.from(queue),
    dropped,
    awaitingPubrel,
    nextPacketId,
    willDelayInterval,
    receiveMaximum
  }
  if (value.will !== undefined) {
    const will = fromStoredMessage(value.will)
    if (will === undefined) return undefined
    state.will = will
  }
  for (const key of ["willAt", "maximumPacketSize", "disconnectedAt"] as const) {
    const field = value[key]
    if (field === undefined) continue
    if (!isNumber(field)) return undefined
    state[key] = field
  }
  return state as unknown as SessionState
}

/** The form this module writes, read by hand (`byHand`); anything else through the Schema (`decode`), which says what is wrong. */
const readByHandOr = <A>(
  kind: "session" | "message",
  text: string,
  byHand: (value: unknown) => A | undefined,
  decode: (value: unknown) => Exit.Exit<{ readonly v: number } & Record<typeof kind, A>, unknown>
): A => {
  try {
    const value: unknown = JSON.parse(text)
    if (isRecord(value) && value.v === VERSION) {
      const read = byHand(value[kind])
      if (read !== undefined) return read
    }
  } catch {
    // not JSON: the Schema path says so, in its words
  }
  return decodeText(kind, text, decode)
}

/**
 * The hand-written readers of a parsed stored message / session (`undefined`: not of the form
 * this module writes). Exported for the codec's test, which checks they read everything written.
 */
export const byHand = { message: fromStoredMessage, session: fromStoredSession } as const

/** A session from stored text; throws `SessionCodecError` for text of no known format. */
export const decodeSessionSync = (text: string): SessionState =>
  readByHandOr("session", text, fromStoredSession, decodeSessionEnvelope as never)

/** A session from stored text, failing with `SessionCodecError` for text of no known format. */
export const decodeSession = (text: string): Effect.Effect<SessionState, SessionCodecError> =>
  Effect.try({ try: () => decodeSessionSync(text), catch: (error) => error as SessionCodecError })

/** Message texts by identity: a message queued for many sessions is one row text. */
const messageTexts = new WeakMap<Message, string>()

/** A message as stored text (the current format version). */
export const encodeMessage = (message: Message): string => {
  let text = messageTexts.get(message)
  if (text === undefined) {
    text = JSON.stringify({ v: VERSION, message: toStoredMessage(message) })
    messageTexts.set(message, text)
  }
  return text
}

/** A message from stored text; throws `SessionCodecError` for text of no known format. */
export const decodeMessageSync = (text: string): Message =>
  readByHandOr("message", text, fromStoredMessage, decodeMessageEnvelope as never)

/** A message from stored text, failing with `SessionCodecError` for text of no known format. */
export const decodeMessage = (text: string): Effect.Effect<Message, SessionCodecError> =>
  Effect.try({ try: () => decodeMessageSync(text), catch: (error) => error as SessionCodecError })
