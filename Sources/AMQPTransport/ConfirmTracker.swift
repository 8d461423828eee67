/// Publisher-confirm bookkeeping for the confirm-mode channel: which publishes the broker has not settled yet,
/// which batch and position each one belongs to, and what each batch's caller gets back.
///
/// A pure state machine: no I/O, no locks, and it never resumes anything itself. ``ConnectionDriver`` tells it
/// what went out and what the broker answered, and performs the ``Completion``s it returns. `Waiter` is what the
/// caller resumes when a batch is settled (a continuation on the connection thread, a plain value in tests); the
/// tracker only hands it back.
///
/// Sequence numbers are the channel's confirm-mode numbers: 1 for the first publish after `confirm.select`, one
/// more for each publish after it. The broker's `basic.ack` / `basic.nack` name publishes by them, and with
/// `multiple` they cover every publish up to and including the tag. ``channelLost(reportingAs:)`` settles every
/// unconfirmed publish and restarts the numbering at 1, as the next channel will. See docs/transport.md,
/// "Confirm tracking".
struct ConfirmTracker<Waiter> {
    /// Names a batch for ``published(_:of:returnKey:)`` and ``settleUnpublished(_:of:as:)``.
    struct BatchID: Hashable {
        fileprivate let value: Int
    }

    /// A batch whose every message is settled: resume `waiter` once with `outcomes`, one per message, in batch
    /// order.
    struct Completion {
        var waiter: Waiter
        var outcomes: [PublishOutcome]
    }

    private struct PendingPublish {
        var batch: BatchID
        var index: Int
        /// The message id a `basic.return` is matched by (mandatory messages only).
        var returnKey: String?
        /// Set when the broker returned the message; the ack that follows settles it with this outcome.
        var returned: PublishOutcome?
    }

    private struct Batch {
        var outcomes: [PublishOutcome?]
        var remaining: Int
        var waiter: Waiter
    }

    private var nextSequence: UInt64 = 1
    /// No publish below this sequence number is pending; a `multiple` confirm starts here.
    private var oldestPending: UInt64 = 1
    private var pending: [UInt64: PendingPublish] = [:]
    /// Pending mandatory publishes by message id, oldest first.
    private var pendingByMessageID: [String: [UInt64]] = [:]
    private var batches: [BatchID: Batch] = [:]
    private var nextBatchID = 0

    /// Publishes sent and not yet settled by the broker.
    var unconfirmedCount: Int { pending.count }

    /// Batches whose caller is still waiting.
    var openBatchCount: Int { batches.count }

    // MARK: - What the client sends

    /// Starts a batch of `count` messages (at least one) whose caller waits as `waiter`.
    ///
    /// Every index in `0..<count` must then be either ``published(_:of:returnKey:)`` or
    /// ``settleUnpublished(_:of:as:)``: the batch completes only when all of them are settled.
    mutating func beginBatch(of count: Int, waiter: Waiter) -> BatchID {
        precondition(count > 0, "an empty batch would never complete; answer it without the tracker")
        let id = BatchID(value: nextBatchID)
        nextBatchID += 1
        batches[id] = Batch(outcomes: Array(repeating: nil, count: count), remaining: count, waiter: waiter)
        return id
    }

    /// Records that message `index` of `batch` went out on the confirm-mode channel, and returns its sequence
    /// number. Call it only after the publish was handed to the socket, in publishing order.
    ///
    /// - Parameter returnKey: the message id of a mandatory message, which a `basic.return` is matched by;
    ///   `nil` for a message that is not mandatory.
    @discardableResult
    mutating func published(_ index: Int, of batch: BatchID, returnKey: String?) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        pending[sequence] = PendingPublish(batch: batch, index: index, returnKey: returnKey)
        if let returnKey { pendingByMessageID[returnKey, default: []].append(sequence) }
        return sequence
    }

    /// Settles message `index` of `batch`, which never went out (it cannot be encoded, or the connection failed
    /// before it was sent), with `outcome`. Returns the batch's completion when this was its last open message.
    mutating func settleUnpublished(_ index: Int, of batch: BatchID, as outcome: PublishOutcome) -> Completion? {
        record(outcome, batch: batch, index: index)
    }

    // MARK: - What the broker answers

    /// Applies a `basic.ack`: the publish `tag` (with `multiple`, every pending publish up to and including it)
    /// is confirmed, or returned if a `basic.return` came for it first. Tags that are unknown or already settled
    /// are ignored. Returns the batches this completes, oldest publish first.
    mutating func ack(_ tag: UInt64, multiple: Bool) -> [Completion] {
        settle(upTo: tag, multiple: multiple) { $0.returned ?? .confirmed }
    }

    /// Applies a `basic.nack`: the publish `tag` (with `multiple`, every pending publish up to and including it)
    /// is nacked, even if it was returned before. Tags that are unknown or already settled are ignored. Returns
    /// the batches this completes, oldest publish first.
    mutating func nack(_ tag: UInt64, multiple: Bool) -> [Completion] {
        settle(upTo: tag, multiple: multiple) { _ in .nacked }
    }

    /// Applies a `basic.return` of a mandatory message: the oldest pending publish with this message id that was
    /// not returned yet settles as returned when its ack comes (the broker sends the return first).
    ///
    /// Returns `false` when no pending publish matches (no message id, or none pending with it); nothing
    /// changes then, and the caller decides whether to log it.
    mutating func returned(messageID: String?, replyCode: UInt16, replyText: String) -> Bool {
        guard let messageID,
            let sequence = pendingByMessageID[messageID]?.first(where: { pending[$0]?.returned == nil })
        else { return false }
        pending[sequence]?.returned = .returned(replyCode: replyCode, replyText: replyText)
        return true
    }

    /// The confirm-mode channel is gone (the connection dropped, the broker closed the channel, or the client is
    /// closing): the broker will never settle what is pending, so every pending publish settles as `outcome`,
    /// returned ones included. Numbering restarts at 1 for the next channel. Returns the batches this completes,
    /// oldest publish first.
    mutating func channelLost(reportingAs outcome: PublishOutcome) -> [Completion] {
        let failed = pending.sorted { $0.key < $1.key }
        pending.removeAll()
        pendingByMessageID.removeAll()
        nextSequence = 1
        oldestPending = 1
        return failed.compactMap { record(outcome, batch: $0.value.batch, index: $0.value.index) }
    }

    // MARK: - Bookkeeping

    private mutating func settle(
        upTo tag: UInt64, multiple: Bool, outcome: (PendingPublish) -> PublishOutcome
    ) -> [Completion] {
        var completions: [Completion] = []
        // Nothing at or above `nextSequence` was published, so a larger tag needs no more iterations.
        let lower = multiple ? oldestPending : tag
        let upper = min(tag, nextSequence - 1)
        if lower <= upper {
            for sequence in lower...upper {
                guard let publish = pending.removeValue(forKey: sequence) else { continue }
                forgetReturnKey(of: publish, sequence: sequence)
                if let completion = record(outcome(publish), batch: publish.batch, index: publish.index) {
                    completions.append(completion)
                }
            }
        }
        while oldestPending < nextSequence, pending[oldestPending] == nil { oldestPending += 1 }
        return completions
    }

    private mutating func forgetReturnKey(of publish: PendingPublish, sequence: UInt64) {
        guard let key = publish.returnKey else { return }
        pendingByMessageID[key]?.removeAll { $0 == sequence }
        if pendingByMessageID[key]?.isEmpty == true { pendingByMessageID[key] = nil }
    }

    /// Records one message's outcome; the first outcome of a message wins.
    ///
    /// The batch is changed in place in the dictionary: a copy taken out and put back would copy its outcomes on
    /// every message, quadratic in the batch size.
    private mutating func record(_ outcome: PublishOutcome, batch id: BatchID, index: Int) -> Completion? {
        guard let position = batches.index(forKey: id), batches.values[position].outcomes[index] == nil else {
            return nil
        }
        batches.values[position].outcomes[index] = outcome
        batches.values[position].remaining -= 1
        guard batches.values[position].remaining == 0 else { return nil }
        let batch = batches.remove(at: position).value
        return Completion(waiter: batch.waiter, outcomes: batch.outcomes.map { $0 ?? .connectionLost })
    }
}

extension ConfirmTracker.Completion: Equatable where Waiter: Equatable {}
