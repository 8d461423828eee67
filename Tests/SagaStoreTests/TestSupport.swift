import Foundation
import GRDB
import WaybillDefinition
import WaybillTestSupport

@testable import SagaEngine
@testable import SagaStore

extension SagaStore {
    /// Opens a store at `name` inside `directory`.
    static func open(
        in directory: TemporaryDirectory, _ name: String = "waybill.sqlite",
        durability: Configuration.Durability = .full, readOnly: Bool = false
    ) throws -> SagaStore {
        try SagaStore(
            configuration: Configuration(path: directory.file(name), durability: durability, readOnly: readOnly))
    }

    /// Row counts per table, for atomicity checks.
    func counts() throws -> [String: Int] {
        try pool.read { db in
            var counts: [String: Int] = [:]
            for table in ["sagas", "journal", "inbox", "outbox", "timers", "waits", "events", "workflow_definitions"] {
                counts[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1
            }
            return counts
        }
    }

    /// A pragma's value as the writer connection sees it (synchronous is per connection).
    func writerPragma(_ name: String) throws -> String? {
        try pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }
}

extension Fixtures {
    /// A milestone event the store keeps for replay.
    static func event(_ id: String, type: String = "order.shipped") -> OutboxMessage {
        OutboxMessage(
            messageId: id, exchange: "waybill.events", routingKey: type, contentType: "application/cloudevents+json",
            headers: ["waybill-event-type": type], body: Array(#"{"id":"\#(id)","type":"\#(type)"}"#.utf8),
            kept: true)
    }

    static func outbox(_ id: String, routingKey: String = "wms.berlin.release") -> OutboxMessage {
        OutboxMessage(
            messageId: id, exchange: "waybill.commands", routingKey: routingKey, contentType: "application/json",
            correlationId: id, replyTo: "waybill.replies.w1",
            headers: ["idempotency-key": "ord-1/release/0", "waybill-attempt": "1", "odd \"key\"": "line\nbreak ✓"],
            body: Array(#"{"shipmentId":"ord-1-s0"}"#.utf8), mandatory: true)
    }

    /// A realistic change: new state, one journal line, an inbox mark, outbox messages and timer changes.
    static func change(
        _ id: String, message: String? = nil, outbox: [OutboxMessage] = [], schedule: [SagaTimer] = [],
        cancel: [String] = [], at: Int64 = 1_700_000_000_500
    ) -> SagaChange {
        SagaChange(
            key: key(id), at: Timestamp(milliseconds: at), instance: runningInstance(id: id), currentStep: "release",
            owner: "worker-1",
            journal: [
                JournalEntry(at: Timestamp(milliseconds: at), kind: .reply, step: "release[0]", detail: "reply ok")
            ],
            inboxMessageId: message, outbox: outbox, scheduleTimers: schedule, cancelTimerIds: cancel)
    }
}
