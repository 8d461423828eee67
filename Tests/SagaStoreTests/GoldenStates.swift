import WaybillDefinition

@testable import SagaEngine

/// The sagas whose encoded bytes are frozen in `GoldenStates/state-format-1.hex`, written out value by value.
///
/// These are the values the fixture bytes must decode to, forever. Never edit an existing builder to match a codec
/// change: a mismatch means the change would lose or misread sagas already on disk. Add new sagas instead.
enum GoldenStates {
    static let definitionHash = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
    /// 2024-09-17T08:00:00Z.
    static let t0: Int64 = 1_726_560_000_000

    static func at(_ offset: Int64) -> Timestamp { Timestamp(milliseconds: t0 + offset) }

    static func shipment(_ id: String, _ warehouse: String, _ lines: [(String, Int)]) -> JSONValue {
        [
            "id": .string(id), "warehouse": .string(warehouse),
            "lines": .array(lines.map { ["sku": .string($0.0), "quantity": .number(Double($0.1))] }),
        ]
    }

    // MARK: - suspended-reallocation

    /// An order-fulfillment saga suspended in the middle of its second reallocation. Not a state the engine reaches
    /// as a whole: its steps and branches together take every step and branch status of its time (`bypassed`, added
    /// with choice steps, is pinned by StateCodecTests instead), both command kinds and both timer kinds, so the
    /// fixture pins every stored name and every optional field.
    static func suspendedReallocation() -> SagaInstance {
        let sagaPrefix = "order-fulfillment/ord-2024-000417/"
        let outOfStock = StepError(
            code: "out_of_stock", message: "SKU-2002 short by 1 at \"hamburg\"", retryable: false)

        var accepted = BranchState(item: nil, round: 0)
        accepted.status = .succeeded
        accepted.attempt = 2
        accepted.output = ["erpOrderId": "ERP-77812", "erpSequence": 4_294_967_297]
        accepted.lastError = StepError(
            code: StepError.timeoutCode, message: "no reply to \(sagaPrefix)m1 within 30s", retryable: true)
        accepted.startedAt = at(0)
        accepted.finishedAt = at(31_250)
        var accept = StepState()
        accept.status = .succeeded
        accept.branches = [accepted]
        accept.output = accepted.output
        accept.startedAt = at(0)
        accept.finishedAt = at(31_250)

        var skippedReserve = BranchState(item: nil, round: 0)
        skippedReserve.status = .skipped
        skippedReserve.attempt = 5
        skippedReserve.lastError = StepError(
            code: "inventory_unavailable", message: "inventory is read-only for maintenance", retryable: true)
        skippedReserve.startedAt = at(31_250)
        skippedReserve.finishedAt = at(120_000)
        var reserve = StepState()
        reserve.status = .skipped
        reserve.branches = [skippedReserve]
        reserve.output = [
            "reservationId": "res-88",
            "stock": [
                ["warehouse": "berlin", "sku": "SKU-1001", "quantity": 5, "priority": 1],
                ["warehouse": "hamburg", "sku": "SKU-2002", "quantity": 3, "priority": 2],
                ["warehouse": "munich", "sku": "SKU-2002", "quantity": 1],
            ],
        ]
        reserve.startedAt = at(31_250)
        reserve.finishedAt = at(400_000)

        var split = StepState()
        split.status = .succeeded
        split.output = [
            "shipments": [
                shipment("ord-2024-000417-r1-1", "berlin", [("SKU-1001", 2)]),
                shipment("ord-2024-000417-r1-2", "munich", [("SKU-2002", 1)]),
            ],
            "backordered": [],
        ]
        split.round = 1
        split.excludedWarehouses = ["hamburg"]
        split.startedAt = at(400_000)
        split.finishedAt = at(400_000)

        let berlin = shipment("ord-2024-000417-r1-1", "berlin", [("SKU-1001", 2)])
        let munich = shipment("ord-2024-000417-r1-2", "munich", [("SKU-2002", 1)])
        var inFlight = BranchState(item: berlin, round: 1)
        inFlight.attempt = 1
        inFlight.pending = PendingCommand(
            messageId: sagaPrefix + "m31", routingKey: "wms.berlin.release", kind: .do, attempt: 1,
            sentAt: at(400_000))
        inFlight.timer = SagaTimer(id: sagaPrefix + "t32", kind: .replyTimeout, dueAt: at(430_000))
        inFlight.startedAt = at(400_000)

        var retryWait = BranchState(item: munich, round: 1)
        retryWait.status = .retryWait
        retryWait.attempt = 2
        retryWait.timer = SagaTimer(id: sagaPrefix + "t36", kind: .retry, dueAt: at(401_733))
        retryWait.lastError = StepError(
            code: StepError.unroutableCode,
            message: "no queue is bound to routing key 'wms.munich.release' on the commands exchange",
            retryable: true)
        retryWait.startedAt = at(400_000)

        var succeeded = BranchState(item: berlin, round: 1)
        succeeded.status = .succeeded
        succeeded.attempt = 1
        succeeded.output = [
            "releaseId": "rel-5", "weightKg": 1.25, "parcels": 2, "trackingNumber": 9_007_199_254_740_993.0,
            "balance": -3, "discount": -0.5,
        ]
        succeeded.startedAt = at(400_000)
        succeeded.finishedAt = at(402_500)

        var failed = BranchState(item: munich, round: 1)
        failed.status = .failed
        failed.attempt = 1
        failed.lastError = outOfStock
        failed.startedAt = at(400_000)
        failed.finishedAt = at(403_000)

        var compensating = BranchState(item: berlin, round: 2)
        compensating.status = .compensating
        compensating.attempt = 1
        compensating.compensationAttempt = 1
        compensating.pending = PendingCommand(
            messageId: sagaPrefix + "m44", routingKey: "wms.berlin.cancel", kind: .compensate, attempt: 1,
            sentAt: at(404_000))
        compensating.timer = SagaTimer(id: sagaPrefix + "t45", kind: .replyTimeout, dueAt: at(434_000))
        compensating.output = ["releaseId": "rel-6"]
        compensating.startedAt = at(400_000)
        compensating.finishedAt = at(402_600)

        var compensationRetryWait = BranchState(item: munich, round: 1)
        compensationRetryWait.status = .compensationRetryWait
        compensationRetryWait.attempt = 1
        compensationRetryWait.compensationAttempt = 3
        compensationRetryWait.timer = SagaTimer(id: sagaPrefix + "t47", kind: .retry, dueAt: at(411_000))
        compensationRetryWait.output = ["releaseId": "rel-7"]
        compensationRetryWait.lastError = StepError(
            code: "wms_busy", message: "the warehouse system is busy, try again", retryable: true)
        compensationRetryWait.startedAt = at(400_000)
        compensationRetryWait.finishedAt = at(402_700)

        var compensated = BranchState(item: berlin, round: 1)
        compensated.status = .compensated
        compensated.attempt = 1
        compensated.compensationAttempt = 1
        compensated.output = ["releaseId": "rel-8"]
        compensated.startedAt = at(400_000)
        compensated.finishedAt = at(405_000)

        var abandoned = BranchState(item: munich, round: 1)
        abandoned.status = .skipped
        abandoned.attempt = 2
        abandoned.lastError = StepError(
            code: StepError.abandonedCode,
            message: "stopped retrying because another branch failed (last error: timeout: no reply)",
            retryable: true)
        abandoned.startedAt = at(400_000)
        abandoned.finishedAt = at(403_000)

        var release = StepState()
        release.status = .failing
        release.branches = [
            inFlight, retryWait, succeeded, failed, compensating, compensationRetryWait, compensated, abandoned,
        ]
        release.round = 1
        release.reallocations = 2
        release.startedAt = at(400_000)

        var carrierRejected = BranchState(item: berlin, round: 0)
        carrierRejected.status = .failed
        carrierRejected.attempt = 1
        carrierRejected.lastError = StepError(
            code: "carrier_rejected", message: "parcel over 31.5 kg", retryable: false)
        carrierRejected.startedAt = at(390_000)
        carrierRejected.finishedAt = at(391_000)
        var ship = StepState()
        ship.status = .failed
        ship.branches = [carrierRejected]
        ship.startedAt = at(390_000)
        ship.finishedAt = at(391_000)

        var invoice = StepState()
        invoice.status = .running
        invoice.startedAt = at(391_000)

        return SagaInstance(
            key: SagaKey(workflow: "order-fulfillment", id: "ord-2024-000417"), version: 3,
            definitionHash: definitionHash, status: .suspended,
            input: [
                "orderId": "ord-2024-000417",
                "customer": ["name": "Zoë Müller", "tier": "gold"],
                "lines": [["sku": "SKU-1001", "quantity": 2], ["sku": "SKU-2002", "quantity": 1]],
                "total": 129.95, "express": true, "coupon": nil,
                "giftNote": "Alles Gute ✓\n\"zum\" Geburtstag\u{0}",
            ],
            steps: [accept, reserve, split, release, ship, invoice], cursor: 3,
            completions: [
                BranchRef(step: 0, branch: 0), BranchRef(step: 3, branch: 2), BranchRef(step: 3, branch: 4),
                BranchRef(step: 3, branch: 5), BranchRef(step: 3, branch: 6),
            ],
            compensation: CompensationPlan(
                purpose: .reallocate(splitStep: 2, excludedWarehouses: ["munich", "hamburg"]),
                queue: [BranchRef(step: 3, branch: 5), BranchRef(step: 3, branch: 4), BranchRef(step: 3, branch: 2)]),
            pivotPassed: false,
            failure: SagaFailure(step: "release", branch: 3, error: outOfStock, at: at(403_000)),
            startedAt: at(0), updatedAt: at(411_000), sequence: 47)
    }

    // MARK: - running

    /// The most common state on disk: a plain saga waiting for the reply to its second step. Most optionals absent.
    static func running() -> SagaInstance {
        var accepted = BranchState(item: nil, round: 0)
        accepted.status = .succeeded
        accepted.attempt = 1
        accepted.output = ["erpOrderId": "ERP-77813"]
        accepted.startedAt = at(0)
        accepted.finishedAt = at(850)
        var accept = StepState()
        accept.status = .succeeded
        accept.branches = [accepted]
        accept.output = accepted.output
        accept.startedAt = at(0)
        accept.finishedAt = at(850)

        var reserving = BranchState(item: nil, round: 0)
        reserving.attempt = 1
        reserving.pending = PendingCommand(
            messageId: "order-fulfillment/ord-2024-000418/m3", routingKey: "inventory.reserve", kind: .do,
            attempt: 1, sentAt: at(850))
        reserving.timer = SagaTimer(
            id: "order-fulfillment/ord-2024-000418/t4", kind: .replyTimeout, dueAt: at(30_850))
        reserving.startedAt = at(850)
        var reserve = StepState()
        reserve.status = .running
        reserve.branches = [reserving]
        reserve.startedAt = at(850)

        return SagaInstance(
            key: SagaKey(workflow: "order-fulfillment", id: "ord-2024-000418"), version: 3,
            definitionHash: definitionHash, status: .running,
            input: ["orderId": "ord-2024-000418", "lines": [["sku": "SKU-1001", "quantity": 1]]],
            steps: [accept, reserve, StepState(), StepState(), StepState(), StepState()], cursor: 1,
            completions: [BranchRef(step: 0, branch: 0)], compensation: nil, pivotPassed: false, failure: nil,
            startedAt: at(0), updatedAt: at(850), sequence: 4)
    }

    // MARK: - compensating-abort

    /// A saga undoing its first step after the second failed for good (an abort, so it will end `compensated`).
    static func compensatingAbort() -> SagaInstance {
        let noStock = StepError(
            code: "insufficient_stock", message: "not enough stock: short SKU-3003 x4", retryable: false)
        var accepted = BranchState(item: nil, round: 0)
        accepted.status = .compensating
        accepted.attempt = 1
        accepted.compensationAttempt = 1
        accepted.pending = PendingCommand(
            messageId: "order-fulfillment/ord-2024-000419/m5", routingKey: "erp.order.cancel", kind: .compensate,
            attempt: 1, sentAt: at(2_000))
        accepted.timer = SagaTimer(
            id: "order-fulfillment/ord-2024-000419/t6", kind: .replyTimeout, dueAt: at(32_000))
        accepted.output = ["erpOrderId": "ERP-77814"]
        accepted.startedAt = at(0)
        accepted.finishedAt = at(900)
        var accept = StepState()
        accept.status = .succeeded
        accept.branches = [accepted]
        accept.output = accepted.output
        accept.startedAt = at(0)
        accept.finishedAt = at(900)

        var rejected = BranchState(item: nil, round: 0)
        rejected.status = .failed
        rejected.attempt = 1
        rejected.lastError = noStock
        rejected.startedAt = at(900)
        rejected.finishedAt = at(2_000)
        var reserve = StepState()
        reserve.status = .failed
        reserve.branches = [rejected]
        reserve.startedAt = at(900)
        reserve.finishedAt = at(2_000)

        return SagaInstance(
            key: SagaKey(workflow: "order-fulfillment", id: "ord-2024-000419"), version: 2,
            definitionHash: definitionHash, status: .compensating,
            input: ["orderId": "ord-2024-000419", "lines": [["sku": "SKU-3003", "quantity": 4]]],
            steps: [accept, reserve, StepState(), StepState(), StepState(), StepState()], cursor: 1,
            completions: [BranchRef(step: 0, branch: 0)],
            compensation: CompensationPlan(purpose: .abort, queue: [BranchRef(step: 0, branch: 0)]),
            pivotPassed: false, failure: SagaFailure(step: "reserve", branch: nil, error: noStock, at: at(2_000)),
            startedAt: at(0), updatedAt: at(2_000), sequence: 6)
    }

    // MARK: - status-*

    /// A saga with no steps in `status`: pins the stored name of every saga status.
    static func bare(_ status: SagaStatus) -> SagaInstance {
        SagaInstance(
            key: SagaKey(workflow: "returns", id: "ret-\(status.rawValue)"), version: 1,
            definitionHash: definitionHash, status: status, input: .null, steps: [], cursor: 0, completions: [],
            compensation: nil, pivotPassed: false, failure: nil, startedAt: at(0), updatedAt: at(1), sequence: 0)
    }

    /// Every saga in the fixture file, by its section name.
    static let all: [(name: String, instance: SagaInstance)] =
        [
            ("suspended-reallocation", suspendedReallocation()), ("running", running()),
            ("compensating-abort", compensatingAbort()),
        ] + SagaStatus.allCases.map { ("status-\($0.rawValue)", bare($0)) }
}
