/**
 * The spec's codes as types: MQTT 3.1.1 CONNACK return codes (§3.2.2.3) and MQTT 5 reason codes
 * (§2.4). A code is one of these values, never any `number`, so a typo or a code from the wrong
 * table does not type-check.
 */

/** MQTT 5 reason codes (§2.4, table 2-6), by the spec's name. */
export const ReasonCode = {
  Success: 0x00,
  GrantedQos1: 0x01,
  GrantedQos2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QosNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2
} as const

/** One MQTT 5 reason code. */
export type ReasonCode = typeof ReasonCode[keyof typeof ReasonCode]

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3); MQTT 3.1 uses the same. */
export const ConnackCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUsernameOrPassword: 4,
  NotAuthorized: 5
} as const

/** One MQTT 3.1.1 CONNACK return code. */
export type ConnackCode = typeof ConnackCode[keyof typeof ConnackCode]

/** MQTT 3.1.1 SUBACK return code for a refused filter (§3.9.3). */
export const SubackFailure = 0x80
