import SagaEngine
import SagaStore
import WaybillDefinition

/// Builders for the `--json` documents: times are ISO-8601 UTC strings with milliseconds, durations are integer
/// milliseconds in fields ending in `Ms`, absent values are `null` (keys are never left out, so scripts can rely on
/// the shape).
enum JSONFields {
    static func time(_ time: Timestamp?) -> JSONValue {
        time.map { .string(TimeText.iso($0)) } ?? .null
    }

    static func int(_ value: Int64?) -> JSONValue {
        value.map { .number(Double($0)) } ?? .null
    }

    static func int(_ value: Int?) -> JSONValue {
        value.map { .number(Double($0)) } ?? .null
    }

    static func string(_ value: String?) -> JSONValue {
        value.map { .string($0) } ?? .null
    }

    static func strings(_ values: [String]) -> JSONValue {
        .array(values.map { .string($0) })
    }

    static func error(_ error: StepError?) -> JSONValue {
        guard let error else { return .null }
        return ["code": .string(error.code), "message": .string(error.message), "retryable": .bool(error.retryable)]
    }

    /// The common fields of a saga row (`list`, `stuck --class`, bulk selections).
    static func row(_ row: SagaRow, now: Timestamp) -> [String: JSONValue] {
        [
            "workflow": .string(row.key.workflow),
            "id": .string(row.key.id),
            "version": int(row.version),
            "definitionHash": .string(row.definitionHash),
            "status": .string(row.status.rawValue),
            "currentStep": string(row.currentStep),
            "owner": string(row.owner),
            "startedAt": time(row.startedAt),
            "updatedAt": time(row.updatedAt),
            "ageMs": int(now.milliseconds - row.startedAt.milliseconds),
            "idleMs": int(now.milliseconds - row.updatedAt.milliseconds),
            "failureCode": string(row.failureCode),
        ]
    }

    static func journal(_ line: JournalLine, key: SagaKey) -> JSONValue {
        [
            "id": int(line.id),
            "workflow": .string(key.workflow),
            "sagaId": .string(key.id),
            "at": time(line.at),
            "kind": .string(line.kind),
            "step": string(line.step),
            "actor": string(line.actor),
            "detail": .string(line.detail),
            "facts": line.facts ?? .null,
        ]
    }
}
