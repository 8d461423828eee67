import AMQPTransport
import CodedError
import Foundation
import SagaEngine
import SagaStore
import SeededRandom
import WaybillDefinition
import WaybillWire

/// The kinds of hostile input the chaos run sends to the start, reply and control queues, each with the share of the
/// inputs it gets and what the pool must do with it.
enum HostileKind: String, Sendable, Hashable, CaseIterable {
    case startNotJSON = "start, not JSON"
    case startNotAnObject = "start, not an object"
    case startWithoutSagaId = "start, saga id missing or of a wrong type"
    case startSagaIdTooLong = "start, saga id too long"
    case startHuge = "start, huge body"
    case replyNotJSON = "reply, not JSON"
    case replyWrongTypes = "reply, wrong types"
    case replyHuge = "reply, huge body"
    case replyHugeMisrouted = "reply, huge body, other partition"
    case replyForeignCorrelation = "reply, correlation id not Waybill's"
    case replyUnknownSaga = "reply, correlation id of no saga"
    case replyUnknownSagaNotJSON = "reply, not JSON, of no saga"
    case replyLate = "reply, late copy"
    case replyDuplicate = "reply, duplicate copy"
    case controlNotJSON = "control, not JSON"
    case controlWrongTypes = "control, wrong types or fields"
    case controlUnknownSaga = "control, no such saga"
    case controlFinishedSaga = "control, saga already finished"
    case controlDuplicate = "control, same message id again"
    case controlWithoutReplyTo = "control, not JSON, no reply_to"
    case controlHuge = "control, huge body"
    case unknownInput = "partition queue, unknown waybill-input"
    case startForUnknownWorkflow = "forwarded start, unknown workflow"

    /// The share of the hostile inputs of this kind (per thousand).
    var weight: Int {
        switch self {
        case .startNotJSON: 80
        case .startNotAnObject: 50
        case .startWithoutSagaId: 80
        case .startSagaIdTooLong: 30
        case .startHuge: 20
        case .replyNotJSON: 80
        case .replyWrongTypes: 80
        case .replyHuge: 20
        case .replyHugeMisrouted: 10
        case .replyForeignCorrelation: 70
        case .replyUnknownSaga: 50
        case .replyUnknownSagaNotJSON: 20
        case .replyLate: 60
        case .replyDuplicate: 50
        case .controlNotJSON: 50
        case .controlWrongTypes: 50
        case .controlUnknownSaga: 30
        case .controlFinishedSaga: 40
        case .controlDuplicate: 20
        case .controlWithoutReplyTo: 10
        case .controlHuge: 10
        case .unknownInput: 40
        case .startForUnknownWorkflow: 20
        }
    }

    /// Which queue it goes to: `start`, `reply` or `control`.
    var queue: String {
        switch self {
        case .startNotJSON, .startNotAnObject, .startWithoutSagaId, .startSagaIdTooLong, .startHuge: "start"
        case .replyNotJSON, .replyWrongTypes, .replyHuge, .replyHugeMisrouted, .replyForeignCorrelation,
            .replyUnknownSaga, .replyUnknownSagaNotJSON, .replyLate, .replyDuplicate:
            "reply"
        case .controlNotJSON, .controlWrongTypes, .controlUnknownSaga, .controlFinishedSaga, .controlDuplicate,
            .controlWithoutReplyTo, .controlHuge, .unknownInput, .startForUnknownWorkflow:
            "control"
        }
    }
}

/// What the pool must do with a hostile input for the run to pass.
enum HostileExpectation: Sendable, Hashable {
    /// Dead-lettered with an `x-waybill-error` reason starting with this code.
    case deadLettered(code: String)
    /// Dead-lettered, or journaled on a saga, with a reason; there is no saga for it, so a dead letter is the only
    /// place it can go.
    case deadLetteredAnyReason
    /// A journal line of `key` of this kind names `needle` (the reply's correlation id, or the control message's
    /// id in its reason).
    case journaled(key: SagaKey, kind: String, needle: String)
    /// Answered on the run's reply queue (any status but `applied`), and, when `journal` is set, journaled on that
    /// saga too.
    case answered(journal: SagaKey?)
}

/// One hostile input that was sent.
struct HostileInput: Sendable, Hashable {
    /// `chaos-hostile-<n>`: its message id (and the correlation id of control messages).
    var id: String
    var kind: HostileKind
    var expectation: HostileExpectation
}

/// Makes the hostile inputs: bad JSON, wrong types, huge bodies, foreign and unknown correlation ids, late and
/// duplicate copies of real replies, bad control messages and unknown partition inputs. Real correlation ids and real
/// reply bodies come from ``ChaosReplies``; finished sagas from the milestones seen so far.
struct HostileInputs: Sendable {
    var workflow: WorkflowDefinition
    var poolName: String
    var partitionCount: Int
    var answerQueue: String
    var maxMessageBytes: Int
    var seed: UInt64

    /// The kinds of `count` inputs, in a seeded random order, in the proportions of ``HostileKind/weight``.
    func plan(count: Int) -> [HostileKind] {
        let total = HostileKind.allCases.reduce(0) { $0 + $1.weight }
        var kinds: [HostileKind] = []
        for kind in HostileKind.allCases {
            kinds += Array(repeating: kind, count: max(count > 0 ? 1 : 0, count * kind.weight / total))
        }
        var random = SplitMix64.keyed(seed: seed, ["hostile-plan"])
        while kinds.count < count {
            kinds.append(HostileKind.allCases[random.int(in: 0...(HostileKind.allCases.count - 1))])
        }
        kinds.shuffle(using: &random)
        return Array(kinds.prefix(count))
    }

    private func partitionQueue(_ partition: Int) -> String { PoolQueues.partition(partition, pool: poolName) }

    private func partitionQueue(ofSaga sagaId: String) -> String {
        partitionQueue(PoolDirectory.partition(of: sagaId, count: partitionCount))
    }

    /// The message for input number `index` of `kind`, and what must happen to it; `nil` when the kind needs a real
    /// reply or a finished saga and none is there yet (the caller picks another kind). `earlier` is an earlier control
    /// message to send again (``HostileKind/controlDuplicate``).
    func make(
        _ kind: HostileKind, index: Int, replies: ChaosReplies, finished: () -> String?,
        earlier: (OutboundMessage, HostileInput)?
    ) -> (OutboundMessage, HostileInput)? {
        let id = "chaos-hostile-\(index)"
        var random = SplitMix64.keyed(seed: seed, ["hostile", String(index)])
        let trigger = workflow.trigger
        func start(_ body: [UInt8], _ code: String) -> (OutboundMessage, HostileInput) {
            (
                OutboundMessage(
                    exchange: trigger.exchange, routingKey: trigger.routingKey, body: Data(body), mandatory: true,
                    persistent: true, contentType: WireContentType.json, messageID: id),
                HostileInput(id: id, kind: kind, expectation: .deadLettered(code: code))
            )
        }
        func toPartition(
            _ queue: String, _ body: [UInt8], correlation: String?, input: String? = nil, replyTo: String? = nil,
            headers extra: AMQPTable = [:], expectation: HostileExpectation
        ) -> (OutboundMessage, HostileInput) {
            var headers = extra
            if let input { headers[WireHeader.input] = .string(input) }
            return (
                OutboundMessage(
                    exchange: "", routingKey: queue, body: Data(body), mandatory: true, persistent: true,
                    contentType: WireContentType.json, messageID: id, correlationID: correlation, replyTo: replyTo,
                    headers: headers),
                HostileInput(id: id, kind: kind, expectation: expectation)
            )
        }
        let huge = Array(repeating: UInt8(ascii: "x"), count: maxMessageBytes + random.int(in: 1...32_768))
        let ghost = "chaos-ghost-\(index)"
        let ghostCorrelation = "\(workflow.name)/\(ghost)/m1"
        let anyPartition = random.int(in: 0...(partitionCount - 1))

        switch kind {
        case .startNotJSON:
            let bodies = ["{\"orderId\": \"o-\(index)\"", "not json \(index)", "{orderId: o-\(index)}", "\u{1}\u{2}"]
            return start(Array(bodies[index % bodies.count].utf8), WireRefusalCode.notJSON)
        case .startNotAnObject:
            let bodies = ["[1,2,3]", "\"o-\(index)\"", "42", "null", "true"]
            return start(Array(bodies[index % bodies.count].utf8), WireRefusalCode.notAnObject)
        case .startWithoutSagaId:
            let bodies = [
                "{\"orderId\": null}", "{\"orderId\": {\"id\": \"o-\(index)\"}}", "{\"orderId\": [\"o-\(index)\"]}",
                "{\"lines\": []}", "{\"orderId\": \"\"}",
            ]
            return start(Array(bodies[index % bodies.count].utf8), WireRefusalCode.noSagaId)
        case .startSagaIdTooLong:
            let long = String(repeating: "o", count: 300) + "-\(index)"
            return start(Array("{\"orderId\": \"\(long)\", \"lines\": []}".utf8), WireRefusalCode.sagaIdTooLong)
        case .startHuge:
            return start(huge, WireRefusalCode.tooLarge)

        case .replyNotJSON, .replyWrongTypes, .replyHuge:
            guard let reply = replies.takeReply(olderThan: .seconds(1)) else { return nil }
            let key = SagaKey(workflow: workflow.name, id: reply.sagaId)
            let body: [UInt8]
            switch kind {
            case .replyNotJSON: body = Array("{\"status\": \"ok\", \"output\": ".utf8)
            case .replyWrongTypes:
                let bodies = [
                    "{\"status\": 5}", "{\"status\": \"error\"}",
                    "{\"status\": \"error\", \"code\": \"x\", \"retryable\": \"yes\"}", "[]", "{\"status\": \"maybe\"}",
                ]
                body = Array(bodies[index % bodies.count].utf8)
            default: body = huge
            }
            // Replies that are not huge also go to another partition now and then: the worker forwards them.
            let queue =
                kind != .replyHuge && random.unit() < 0.3
                ? partitionQueue(anyPartition) : partitionQueue(ofSaga: reply.sagaId)
            return toPartition(
                queue, body, correlation: reply.commandId,
                expectation: .journaled(key: key, kind: JournalEntry.Kind.note.rawValue, needle: reply.commandId))
        case .replyHugeMisrouted:
            guard let reply = replies.takeReply(olderThan: .seconds(1)) else { return nil }
            let own = PoolDirectory.partition(of: reply.sagaId, count: partitionCount)
            return toPartition(
                partitionQueue((own + 1) % partitionCount), huge, correlation: reply.commandId,
                expectation: .deadLettered(code: WireRefusalCode.tooLarge))
        case .replyForeignCorrelation:
            let correlation = index % 3 == 0 ? nil : "not-waybill-\(index)"
            return toPartition(
                partitionQueue(anyPartition), Array("{\"status\": \"ok\", \"output\": {}}".utf8),
                correlation: correlation, expectation: .deadLettered(code: WireRefusalCode.unknownCorrelationId))
        case .replyUnknownSaga:
            return toPartition(
                partitionQueue(ofSaga: ghost), Array("{\"status\": \"ok\", \"output\": {}}".utf8),
                correlation: ghostCorrelation, expectation: .deadLetteredAnyReason)
        case .replyUnknownSagaNotJSON:
            return toPartition(
                partitionQueue(ofSaga: ghost), Array("{\"status\"".utf8), correlation: ghostCorrelation,
                expectation: .deadLettered(code: WireRefusalCode.notJSON))
        case .replyLate, .replyDuplicate:
            let taken = kind == .replyLate ? replies.takeReply(olderThan: .seconds(5)) : replies.takeNewestReply()
            guard let reply = taken else { return nil }
            let key = SagaKey(workflow: workflow.name, id: reply.sagaId)
            // The real body under a new message id: the worker's inbox lets it through and the saga ignores it (or
            // takes it and ignores the participant's own copy), journaling either.
            return toPartition(
                partitionQueue(ofSaga: reply.sagaId), JSONText.encodeBytes(reply.body), correlation: reply.commandId,
                expectation: .journaled(key: key, kind: JournalEntry.Kind.ignored.rawValue, needle: reply.commandId))

        case .controlNotJSON:
            return toPartition(
                partitionQueue(anyPartition), Array("{\"action\": \"retry\"".utf8), correlation: id,
                input: PartitionInput.control.rawValue, replyTo: answerQueue, expectation: .answered(journal: nil))
        case .controlWrongTypes:
            let bodies: [JSONValue] = [
                ["workflow": 1, "sagaId": "o-000001", "action": "retry", "by": "chaos", "reason": .string(id)],
                [
                    "workflow": .string(workflow.name), "sagaId": "o-000001", "action": "explode", "by": "chaos",
                    "reason": .string(id),
                ],
                ["workflow": .string(workflow.name), "sagaId": "o-000001", "action": "retry"],
                [
                    "workflow": .string(workflow.name), "sagaId": "o-000001", "action": "skip", "by": "chaos",
                    "reason": .string(id),
                ],
                [
                    "workflow": .string(workflow.name), "sagaId": ["o-000001"], "action": "cancel", "by": 7,
                    "reason": "",
                ],
            ]
            return toPartition(
                partitionQueue(anyPartition), JSONText.encodeBytes(bodies[index % bodies.count]), correlation: id,
                input: PartitionInput.control.rawValue, replyTo: answerQueue, expectation: .answered(journal: nil))
        case .controlUnknownSaga:
            let body = ControlMessage(
                workflow: workflow.name, sagaId: ghost, action: .retry, by: "chaos", reason: id
            ).json
            return toPartition(
                partitionQueue(ofSaga: ghost), JSONText.encodeBytes(body), correlation: id,
                input: PartitionInput.control.rawValue, replyTo: answerQueue, expectation: .answered(journal: nil))
        case .controlFinishedSaga:
            guard let sagaId = finished() else { return nil }
            let actions: [ControlMessage.Action] = [.retry, .skip, .compensate, .cancel]
            let action = actions[index % actions.count]
            let body = ControlMessage(
                workflow: workflow.name, sagaId: sagaId, action: action, step: action == .skip ? "invoice" : nil,
                by: "chaos", reason: id
            ).json
            let key = SagaKey(workflow: workflow.name, id: sagaId)
            // Sent to another partition now and then: the worker forwards it to the saga's.
            let queue = random.unit() < 0.3 ? partitionQueue(anyPartition) : partitionQueue(ofSaga: sagaId)
            return toPartition(
                queue, JSONText.encodeBytes(body), correlation: id, input: PartitionInput.control.rawValue,
                replyTo: answerQueue, expectation: .answered(journal: key))
        case .controlDuplicate:
            guard let (message, first) = earlier else { return nil }
            var again = message
            again.properties.correlationID = id
            // The same message id as the earlier request: the worker answers that it is a duplicate.
            _ = first
            return (again, HostileInput(id: id, kind: kind, expectation: .answered(journal: nil)))
        case .controlWithoutReplyTo:
            return toPartition(
                partitionQueue(anyPartition), Array("{\"action\": ".utf8), correlation: id,
                input: PartitionInput.control.rawValue, expectation: .deadLetteredAnyReason)
        case .controlHuge:
            return toPartition(
                partitionQueue(anyPartition), huge, correlation: id, input: PartitionInput.control.rawValue,
                replyTo: answerQueue, expectation: .deadLettered(code: WireRefusalCode.tooLarge))
        case .unknownInput:
            let values = ["bogus", "START", "", "reply"]
            return toPartition(
                partitionQueue(anyPartition), Array("{\"status\": \"ok\"}".utf8), correlation: ghostCorrelation,
                input: values[index % values.count], expectation: .deadLettered(code: WireRefusalCode.unknownInput))
        case .startForUnknownWorkflow:
            return toPartition(
                partitionQueue(anyPartition), Array("{\"orderId\": \"\(ghost)\", \"lines\": []}".utf8),
                correlation: nil, input: PartitionInput.start.rawValue,
                headers: [WireHeader.workflow: "chaos-no-such-workflow"],
                expectation: .deadLettered(code: WireRefusalCode.unknownInput))
        }
    }
}

/// The stable `x-waybill-error` codes the hostile inputs expect (the raw values of ``WireRefusal`` codes).
enum WireRefusalCode {
    typealias Code = ErrorCode<WireRefusalDomain>
    static let notJSON = Code.notJSON.rawValue
    static let notAnObject = Code.notAnObject.rawValue
    static let noSagaId = Code.noSagaId.rawValue
    static let sagaIdTooLong = Code.sagaIdTooLong.rawValue
    static let tooLarge = Code.tooLarge.rawValue
    static let unknownCorrelationId = Code.unknownCorrelationId.rawValue
    static let unknownInput = Code.unknownInput.rawValue
}
