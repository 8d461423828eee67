import SagaEngine
import Testing
import WaybillDefinition
import WaybillOperations

@Suite("Times, durations and arguments")
struct TextTests {
    @Test(
        "spans use at most two units",
        arguments: [
            (0, "0ms"), (450, "450ms"), (1_000, "1s"), (59_999, "59s"), (60_000, "1m"), (125_000, "2m5s"),
            (3_600_000, "1h"), (3_660_000, "1h1m"), (3_661_000, "1h1m"), (90_000_000, "1d1h"), (86_400_005, "1d"),
        ] as [(Int64, String)])
    func spans(milliseconds: Int64, text: String) {
        #expect(TimeText.span(milliseconds: milliseconds) == text)
    }

    @Test("UTC formatting and relative times")
    func formatting() {
        let now = Timestamp(milliseconds: 1_736_942_400_000)
        #expect(TimeText.seconds(now) == "2025-01-15T12:00:00Z")
        #expect(TimeText.iso(now.adding(milliseconds: 7)) == "2025-01-15T12:00:00.007Z")
        #expect(TimeText.iso(Timestamp(milliseconds: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(TimeText.iso(Timestamp(milliseconds: -1)) == "1969-12-31T23:59:59.999Z")
        #expect(TimeText.seconds(Timestamp(milliseconds: 951_782_400_000)) == "2000-02-29T00:00:00Z")
        #expect(TimeText.relative(now.adding(milliseconds: -90_000), now: now) == "1m30s ago")
        #expect(TimeText.relative(now.adding(milliseconds: 20_000), now: now) == "in 20s")
        #expect(TimeText.relative(now.adding(milliseconds: 400), now: now) == "now")
        #expect(TimeText.short(now.adding(milliseconds: -60_000), now: now) == "11:59:00Z")
        #expect(TimeText.short(now.adding(milliseconds: -86_400_000), now: now) == "2025-01-14T12:00:00Z")
    }

    @Test("--since takes a duration ago or a UTC time")
    func times() throws {
        let now = Timestamp(milliseconds: 1_736_942_400_000)
        #expect(try TimeText.parseTime("2h", option: "--since", now: now) == now.adding(milliseconds: -7_200_000))
        #expect(
            try TimeText.parseTime("2025-01-15", option: "--since", now: now) == now.adding(milliseconds: -43_200_000))
        #expect(
            try TimeText.parseTime("2025-01-15T10:30Z", option: "--since", now: now)
                == now.adding(milliseconds: -5_400_000))
        #expect(
            try TimeText.parseTime("2025-01-15 11:59:59.5", option: "--since", now: now)
                == now.adding(milliseconds: -500))
        #expect(
            throws: OperationsError(
                .badArgument,
                "--since 'yesterday': expected a duration before now like 2h, or a UTC time like 2025-01-15T10:00:00Z")
        ) {
            try TimeText.parseTime("yesterday", option: "--since", now: now)
        }
        #expect(throws: OperationsError.self) { try TimeText.parseTime("2025-13-01", option: "--since", now: now) }
    }

    @Test(
        "--since refuses dates and times that do not exist instead of rolling them over",
        arguments: ["2025-02-30", "2025-02-29T10:00Z", "2025-13-01", "2025-04-31", "2025-01-15T24:00:00Z"])
    func impossibleTimes(text: String) {
        let now = Timestamp(milliseconds: 1_736_942_400_000)
        #expect(
            throws: OperationsError(
                .badArgument,
                "--since '\(text)': expected a duration before now like 2h, or a UTC time like 2025-01-15T10:00:00Z")
        ) {
            try TimeText.parseTime(text, option: "--since", now: now)
        }
    }

    @Test(
        "bad arguments get a one-line hint",
        arguments: [
            ("duration", "15x", "--stuck-for '15x': expected a duration like 30s, 15m, 2h or 1d"),
            ("duration", "15", "--stuck-for '15': expected a duration like 30s, 15m, 2h or 1d"),
            (
                "status", "suspnded",
                "--status 'suspnded': expected one of running, compensating, completed, compensated, suspended, "
                    + "cancelled, active or terminal (comma separated)"
            ),
            ("limit", "0", "--limit '0': expected a whole number from 1 to 1000000"),
            (
                "class", "stale",
                "--class 'stale': expected one of compensation-failing, suspended, reply-overdue, timer-overdue, "
                    + "retrying, no-progress, on-schedule"
            ),
            ("saga", " ", "empty saga id: expected ID or workflow/ID, e.g. o-1001"),
        ])
    func hints(kind: String, input: String, message: String) {
        #expect {
            switch kind {
            case "duration": _ = try TimeText.parseDuration(input, option: "--stuck-for")
            case "status": _ = try SagaFilter.parseStatuses(input)
            case "limit": _ = try SagaFilter.parseLimit(input)
            case "class": _ = try StuckClass.parse(input)
            default: _ = try SagaReference(parsing: input)
            }
        } throws: { error in
            guard let error = error as? OperationsError else { return false }
            return error.code == .badArgument && error.message == message && !error.message.contains("\n")
        }
    }

    @Test("statuses accept groups and keep their order")
    func statuses() throws {
        #expect(try SagaFilter.parseStatuses("suspended,running") == [.suspended, .running])
        #expect(try SagaFilter.parseStatuses("active") == [.running, .compensating, .suspended])
        #expect(try SagaFilter.parseStatuses("Terminal, completed") == [.completed, .compensated, .cancelled])
    }

    @Test("saga references split at the first slash after a workflow name")
    func references() throws {
        #expect(
            try SagaReference(parsing: "o-1") == SagaReference(SagaKey(workflow: "x", id: "o-1")).with(workflow: nil))
        let qualified = try SagaReference(parsing: "order-fulfillment/o-1")
        #expect(qualified.workflow == "order-fulfillment" && qualified.id == "o-1")
        let slashy = try SagaReference(parsing: "ORD/2025/7")
        #expect(slashy.workflow == nil && slashy.id == "ORD/2025/7")
        let nested = try SagaReference(parsing: "returns/R/7")
        #expect(nested.workflow == "returns" && nested.id == "R/7")
    }

    @Test("pretty JSON is stable: sorted keys, two-space indent")
    func prettyJSON() {
        let value: JSONValue = ["b": [1, "x", nil, [:], []], "a": ["z": true, "y": 1.5]]
        #expect(
            PrettyJSON.render(value) == """
                {
                  "a": {
                    "y": 1.5,
                    "z": true
                  },
                  "b": [
                    1,
                    "x",
                    null,
                    {},
                    []
                  ]
                }

                """)
        #expect(PrettyJSON.line(value) == #"{"a":{"y":1.5,"z":true},"b":[1,"x",null,{},[]]}"# + "\n")
    }

    @Test("tables align, right-align counts and trim trailing blanks")
    func tables() {
        var table = TextTable(["NAME", "COUNT", "NOTE"], right: [1])
        table.add(["running", "12"])
        table.add(["suspended", "3", "needs an operator"])
        #expect(
            table.render() == """
                NAME       COUNT  NOTE
                running       12
                suspended      3  needs an operator

                """)
    }
}

extension SagaReference {
    fileprivate func with(workflow: String?) -> SagaReference {
        var copy = self
        copy.workflow = workflow
        return copy
    }
}
