import Testing

@testable import AMQPTransport

/// The publisher-confirm state machine on its own, no broker: batches of publishes settled by the frames a
/// broker may send, in the orders it may send them.
struct ConfirmTrackerTests {
    /// What the broker sends on the confirm-mode channel, and the loss of that channel.
    enum Frame: Sendable, CustomStringConvertible {
        case ack(UInt64, multiple: Bool = false)
        case nack(UInt64, multiple: Bool = false)
        /// A `basic.return` of the mandatory message with this message id (312 NO_ROUTE).
        case returned(String)

        var description: String {
            switch self {
            case .ack(let tag, let multiple): "ack \(tag)\(multiple ? " multiple" : "")"
            case .nack(let tag, let multiple): "nack \(tag)\(multiple ? " multiple" : "")"
            case .returned(let id): "return \(id)"
            }
        }
    }

    /// One batch published as sequence numbers 1, 2, 3..., then settled by `frames`.
    struct SingleBatch: Sendable, CustomTestStringConvertible {
        var name: String
        /// Per message: the message id of a mandatory message, `nil` for one that is not mandatory.
        var returnKeys: [String?]
        var frames: [Frame]
        /// The index of the frame that settles the last open message.
        var completesAt: Int
        var outcomes: [PublishOutcome]

        var testDescription: String { name }
    }

    static let noRoute = PublishOutcome.returned(replyCode: 312, replyText: "NO_ROUTE")

    static let singleBatches: [SingleBatch] = [
        SingleBatch(
            name: "acks in order", returnKeys: [nil, nil, nil], frames: [.ack(1), .ack(2), .ack(3)], completesAt: 2,
            outcomes: [.confirmed, .confirmed, .confirmed]),
        SingleBatch(
            name: "acks out of order", returnKeys: [nil, nil, nil], frames: [.ack(3), .ack(1), .ack(2)],
            completesAt: 2, outcomes: [.confirmed, .confirmed, .confirmed]),
        SingleBatch(
            name: "one multiple ack covers the batch", returnKeys: [nil, nil, nil], frames: [.ack(3, multiple: true)],
            completesAt: 0, outcomes: [.confirmed, .confirmed, .confirmed]),
        SingleBatch(
            name: "a multiple ack stops at its tag", returnKeys: [nil, nil, nil, nil],
            frames: [.ack(2, multiple: true), .ack(4), .ack(3)], completesAt: 2,
            outcomes: [.confirmed, .confirmed, .confirmed, .confirmed]),
        SingleBatch(
            name: "a multiple ack covers what single acks left out", returnKeys: [nil, nil, nil, nil],
            frames: [.ack(2), .ack(4), .ack(3, multiple: true)], completesAt: 2,
            outcomes: [.confirmed, .confirmed, .confirmed, .confirmed]),
        SingleBatch(
            name: "single nack", returnKeys: [nil, nil, nil], frames: [.ack(1), .nack(2), .ack(3)], completesAt: 2,
            outcomes: [.confirmed, .nacked, .confirmed]),
        SingleBatch(
            name: "multiple nack", returnKeys: [nil, nil, nil], frames: [.nack(2, multiple: true), .ack(3)],
            completesAt: 1, outcomes: [.nacked, .nacked, .confirmed]),
        SingleBatch(
            name: "a multiple nack leaves earlier acks alone", returnKeys: [nil, nil, nil, nil],
            frames: [.ack(2), .nack(4, multiple: true)], completesAt: 1,
            outcomes: [.nacked, .confirmed, .nacked, .nacked]),
        SingleBatch(
            name: "a multiple ack leaves earlier nacks alone", returnKeys: [nil, nil, nil],
            frames: [.nack(1), .ack(3, multiple: true)], completesAt: 1, outcomes: [.nacked, .confirmed, .confirmed]),
        SingleBatch(
            name: "a returned message's ack settles it as returned", returnKeys: [nil, "m-2", nil],
            frames: [.returned("m-2"), .ack(3, multiple: true)], completesAt: 1,
            outcomes: [.confirmed, noRoute, .confirmed]),
        SingleBatch(
            name: "a return and its single ack among other acks", returnKeys: ["m-1", "m-2", "m-3"],
            frames: [.ack(1), .returned("m-3"), .ack(3), .ack(2)], completesAt: 3,
            outcomes: [.confirmed, .confirmed, noRoute]),
        SingleBatch(
            name: "a nack wins over an earlier return", returnKeys: [nil, "m-2"],
            frames: [.returned("m-2"), .nack(2), .ack(1)], completesAt: 2, outcomes: [.confirmed, .nacked]),
        SingleBatch(
            name: "returns of one message id match the oldest unreturned publish first",
            returnKeys: ["same", "same", "same"],
            frames: [.returned("same"), .returned("same"), .ack(3, multiple: true)],
            completesAt: 2, outcomes: [noRoute, noRoute, .confirmed]),
        SingleBatch(
            name: "a return for a message that is not mandatory matches nothing", returnKeys: [nil, "m-2"],
            frames: [.returned("m-1"), .ack(2, multiple: true)], completesAt: 1, outcomes: [.confirmed, .confirmed]),
        SingleBatch(
            name: "mixed acks, nacks and returns", returnKeys: ["a", "b", nil, "d", nil, "f"],
            frames: [
                .returned("d"), .nack(3), .ack(2, multiple: true), .returned("f"), .ack(6), .ack(5, multiple: true),
            ],
            completesAt: 5, outcomes: [.confirmed, .confirmed, .nacked, noRoute, .confirmed, noRoute]),
        SingleBatch(
            name: "duplicate and unknown tags are ignored", returnKeys: [nil, nil, nil],
            frames: [
                .ack(1), .ack(1), .nack(1), .ack(0, multiple: true), .ack(99), .nack(42), .ack(2), .ack(2),
                .nack(2, multiple: true), .ack(3),
            ],
            completesAt: 9, outcomes: [.confirmed, .confirmed, .confirmed]),
    ]

    @Test(arguments: singleBatches)
    func oneBatchSettledByBrokerFrames(_ scenario: SingleBatch) {
        var tracker = ConfirmTracker<String>()
        let batch = tracker.beginBatch(of: scenario.returnKeys.count, waiter: "batch")
        for (index, key) in scenario.returnKeys.enumerated() {
            #expect(tracker.published(index, of: batch, returnKey: key) == UInt64(index + 1))
        }
        for (position, frame) in scenario.frames.enumerated() {
            let completions = apply(frame, to: &tracker)
            if position == scenario.completesAt {
                #expect(completions == [.init(waiter: "batch", outcomes: scenario.outcomes)], "after \(frame)")
            } else {
                #expect(completions.isEmpty, "\(frame) at position \(position) completed something")
            }
        }
        #expect(tracker.unconfirmedCount == 0)
        #expect(tracker.openBatchCount == 0)
    }

    @Test func batchesCompleteIndependentlyInSequenceOrder() {
        var tracker = ConfirmTracker<String>()
        let first = publish(&tracker, "first", count: 3)  // 1...3
        let second = publish(&tracker, "second", count: 2)  // 4...5
        #expect(first != second)

        #expect(tracker.ack(5, multiple: false).isEmpty)
        #expect(tracker.ack(1, multiple: false).isEmpty)
        #expect(tracker.nack(3, multiple: true) == [.init(waiter: "first", outcomes: [.confirmed, .nacked, .nacked])])
        #expect(tracker.ack(4, multiple: false) == [.init(waiter: "second", outcomes: [.confirmed, .confirmed])])
        #expect(tracker.openBatchCount == 0)
    }

    @Test func oneMultipleAckCompletesSeveralBatchesOldestFirst() {
        var tracker = ConfirmTracker<String>()
        _ = publish(&tracker, "a", count: 2)
        _ = publish(&tracker, "b", count: 1)
        _ = publish(&tracker, "c", count: 2)  // 4...5
        #expect(tracker.ack(2, multiple: false).isEmpty)
        #expect(
            tracker.ack(4, multiple: true) == [
                .init(waiter: "a", outcomes: [.confirmed, .confirmed]), .init(waiter: "b", outcomes: [.confirmed]),
            ])
        #expect(tracker.unconfirmedCount == 1)
        #expect(tracker.ack(5, multiple: true) == [.init(waiter: "c", outcomes: [.confirmed, .confirmed])])
    }

    @Test func messagesThatNeverWentOutSettleWithoutTheBroker() {
        var tracker = ConfirmTracker<String>()
        let tooLong = AMQPError(.invalidArgument, "the routing key is longer than 255 bytes; AMQP cannot carry it")
        let batch = tracker.beginBatch(of: 3, waiter: "mixed")
        tracker.published(0, of: batch, returnKey: nil)
        #expect(tracker.settleUnpublished(1, of: batch, as: .rejected(tooLong)) == nil)
        #expect(tracker.published(2, of: batch, returnKey: nil) == 2)
        // A second outcome for a settled message changes nothing.
        #expect(tracker.settleUnpublished(1, of: batch, as: .connectionLost) == nil)
        #expect(
            tracker.ack(2, multiple: true) == [
                .init(waiter: "mixed", outcomes: [.confirmed, .rejected(tooLong), .confirmed])
            ]
        )

        let rejectedOnly = tracker.beginBatch(of: 2, waiter: "none sent")
        #expect(tracker.settleUnpublished(0, of: rejectedOnly, as: .rejected(tooLong)) == nil)
        #expect(
            tracker.settleUnpublished(1, of: rejectedOnly, as: .rejected(tooLong))
                == .init(waiter: "none sent", outcomes: [.rejected(tooLong), .rejected(tooLong)]))
        #expect(tracker.openBatchCount == 0)
    }

    @Test func connectionLostInMidBatchFailsEveryUnconfirmedPublishAndNumberingRestarts() {
        var tracker = ConfirmTracker<String>()
        let first = tracker.beginBatch(of: 3, waiter: "first")
        tracker.published(0, of: first, returnKey: nil)
        tracker.published(1, of: first, returnKey: "m-2")
        tracker.published(2, of: first, returnKey: nil)
        _ = publish(&tracker, "second", count: 2)  // 4...5
        #expect(tracker.ack(1, multiple: false).isEmpty)
        #expect(returnNoRoute("m-2", on: &tracker))
        #expect(tracker.ack(5, multiple: false).isEmpty)

        // The returned message's ack never came: it is as unconfirmed as the rest.
        #expect(
            tracker.channelLost(reportingAs: .connectionLost) == [
                .init(waiter: "first", outcomes: [.confirmed, .connectionLost, .connectionLost]),
                .init(waiter: "second", outcomes: [.connectionLost, .confirmed]),
            ])
        #expect(tracker.unconfirmedCount == 0)
        #expect(tracker.openBatchCount == 0)
        // What the old channel's publishes were known by is gone.
        #expect(!returnNoRoute("m-2", on: &tracker))

        // The new channel numbers from 1 again, and its acks settle only the new publishes.
        let third = tracker.beginBatch(of: 2, waiter: "third")
        #expect(tracker.published(0, of: third, returnKey: nil) == 1)
        #expect(tracker.published(1, of: third, returnKey: "m-2") == 2)
        #expect(returnNoRoute("m-2", on: &tracker))
        #expect(tracker.ack(2, multiple: true) == [.init(waiter: "third", outcomes: [.confirmed, Self.noRoute])])
    }

    @Test func publishFailingInMidBatchThenTheConnectionDrops() {
        // What the driver does when the socket fails on the second message of three.
        var tracker = ConfirmTracker<String>()
        let batch = tracker.beginBatch(of: 3, waiter: "cut")
        tracker.published(0, of: batch, returnKey: nil)
        #expect(tracker.settleUnpublished(1, of: batch, as: .connectionLost) == nil)
        #expect(tracker.settleUnpublished(2, of: batch, as: .connectionLost) == nil)
        #expect(
            tracker.channelLost(reportingAs: .connectionLost) == [
                .init(waiter: "cut", outcomes: [.connectionLost, .connectionLost, .connectionLost])
            ])
    }

    @Test func brokerClosingThePublishChannelRejectsWhatIsPending() {
        var tracker = ConfirmTracker<String>()
        let reply = AMQPError.ServerReply(code: 404, text: "NOT_FOUND - no exchange 'x' in vhost '/'")
        let error = AMQPError(.channelClosed, "the broker closed channel 2", serverReply: reply)
        _ = publish(&tracker, "doomed", count: 2)
        #expect(tracker.ack(1, multiple: false).isEmpty)
        #expect(
            tracker.channelLost(reportingAs: .rejected(error)) == [
                .init(waiter: "doomed", outcomes: [.confirmed, .rejected(error)])
            ])
        // Late frames of the old channel find nothing; a new batch starts at 1.
        #expect(tracker.ack(2, multiple: true).isEmpty)
        let next = tracker.beginBatch(of: 1, waiter: "next")
        #expect(tracker.published(0, of: next, returnKey: nil) == 1)
        #expect(tracker.ack(1, multiple: false) == [.init(waiter: "next", outcomes: [.confirmed])])
    }

    @Test func channelLostWithNothingPendingDoesNothing() {
        var tracker = ConfirmTracker<String>()
        #expect(tracker.channelLost(reportingAs: .connectionLost).isEmpty)
        _ = publish(&tracker, "done", count: 1)
        #expect(tracker.ack(1, multiple: false).count == 1)
        #expect(tracker.channelLost(reportingAs: .connectionLost).isEmpty)
    }

    @Test(
        arguments: [
            (nil, "no message id"), ("m-9", "an unknown message id"), ("m-1", "a message id returned already"),
        ] as [(String?, String)])
    func returnsThatMatchNoPendingPublishAreReported(_ messageID: String?, _ situation: String) {
        var tracker = ConfirmTracker<String>()
        let batch = tracker.beginBatch(of: 2, waiter: "batch")
        tracker.published(0, of: batch, returnKey: "m-1")
        tracker.published(1, of: batch, returnKey: nil)
        #expect(returnNoRoute("m-1", on: &tracker))

        let matched = tracker.returned(messageID: messageID, replyCode: 313, replyText: "NO_CONSUMERS")
        #expect(!matched, "\(situation)")
        // The unmatched return changed nothing: message 1 keeps its first return.
        #expect(
            tracker.ack(2, multiple: true) == [.init(waiter: "batch", outcomes: [Self.noRoute, .confirmed])])
    }

    @Test func aReturnAfterTheAckMatchesNothing() {
        var tracker = ConfirmTracker<String>()
        let batch = tracker.beginBatch(of: 2, waiter: "batch")
        tracker.published(0, of: batch, returnKey: "m-1")
        tracker.published(1, of: batch, returnKey: nil)
        #expect(tracker.ack(1, multiple: false).isEmpty)
        #expect(!returnNoRoute("m-1", on: &tracker))
        #expect(tracker.ack(2, multiple: false) == [.init(waiter: "batch", outcomes: [.confirmed, .confirmed])])
    }

    // MARK: - Helpers

    private func publish(
        _ tracker: inout ConfirmTracker<String>, _ name: String, count: Int
    )
        -> ConfirmTracker<String>.BatchID
    {
        let batch = tracker.beginBatch(of: count, waiter: name)
        for index in 0..<count { tracker.published(index, of: batch, returnKey: nil) }
        return batch
    }

    private func apply(_ frame: Frame, to tracker: inout ConfirmTracker<String>) -> [ConfirmTracker<String>.Completion]
    {
        switch frame {
        case .ack(let tag, let multiple): return tracker.ack(tag, multiple: multiple)
        case .nack(let tag, let multiple): return tracker.nack(tag, multiple: multiple)
        case .returned(let messageID):
            _ = returnNoRoute(messageID, on: &tracker)
            return []
        }
    }

    /// A `basic.return` with 312 NO_ROUTE, as for an unroutable mandatory message.
    private func returnNoRoute(_ messageID: String, on tracker: inout ConfirmTracker<String>) -> Bool {
        tracker.returned(messageID: messageID, replyCode: 312, replyText: "NO_ROUTE")
    }
}
