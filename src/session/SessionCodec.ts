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
import type { SessionState, Subscription } from "./SessionState.ts"

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

/** A session from stored text; throws `SessionCodecError` for text of no known format. */
export const decodeSessionSync = (text: string): SessionState =>
  decodeText("session", text, decodeSessionEnvelope as never) as SessionState

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
  decodeText("message", text, decodeMessageEnvelope as never) as Message

/** A message from stored text, failing with `SessionCodecError` for text of no known format. */
export const decodeMessage = (text: string): Effect.Effect<Message, SessionCodecError> =>
  Effect.try({ try: () => decodeMessageSync(text), catch: (error) => error as SessionCodecError })
