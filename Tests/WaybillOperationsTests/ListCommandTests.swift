import Testing
import WaybillOperations

/// `waybill sagas list` against the fixture file at its fixed `now`: the table operators read, the filters, and the
/// `--json` shape (every path and its types).
@Suite("sagas list against the fixture file")
struct ListCommandTests: FixtureSuite {
    let fixture: FixtureFile

    init() throws {
        fixture = try FixtureFile()
    }

    @Test("list: every saga, oldest progress first, ties by workflow then id")
    func list() throws {
        let filter = FixtureFile.filter()
        #expect(
            ListView.text(try database.list(filter, now: now), filter: filter, now: now)
                == #"""
                SAGA                      STATUS        STEP       FAILURE          OWNER     LAST PROGRESS     AGE
                order-fulfillment/o-1001  completed     -                           worker-a         2h ago    2h5m
                order-fulfillment/o-1002  compensated   reserve    out_of_stock     worker-a      1h29m ago   1h30m
                order-fulfillment/o-1003  cancelled     accept                      worker-a       1h5m ago    1h6m
                order-fulfillment/o-1004  suspended     ship       address_invalid  worker-b        50m ago      1h
                order-fulfillment/o-1009  running       invoice                     worker-a        50m ago     55m
                order-fulfillment/o-1006  running       reserve                     worker-a      9m59s ago     10m
                order-fulfillment/o-1007  running       accept                      worker-a      5m10s ago  11m40s
                returns/o-1010            running       authorize                   worker-a        30s ago     30s
                order-fulfillment/o-1010  running       reserve                     worker-a        10s ago     15s
                order-fulfillment/o-1005  compensating  reserve    out_of_stock     worker-a         5s ago     20m
                order-fulfillment/o-1008  running       accept                      worker-a         5s ago      2m
                11 sagas, oldest progress first.

                """#)
    }

    @Test("list: several statuses are merged in order, and the footer says when more match")
    func listMerged() throws {
        let filter = FixtureFile.filter {
            $0.statuses = [.running, .compensating]
            $0.limit = 3
        }
        let page = try database.list(filter, now: now)
        #expect(page.hasMore)
        #expect(
            ListView.text(page, filter: filter, now: now)
                == #"""
                SAGA                      STATUS   STEP     FAILURE  OWNER     LAST PROGRESS     AGE
                order-fulfillment/o-1009  running  invoice           worker-a        50m ago     55m
                order-fulfillment/o-1006  running  reserve           worker-a      9m59s ago     10m
                order-fulfillment/o-1007  running  accept            worker-a      5m10s ago  11m40s
                3 sagas, oldest progress first. More match: raise --limit or narrow the filters.

                """#)
        let none = FixtureFile.filter { $0.owner = "nobody" }
        #expect(
            ListView.text(try database.list(none, now: now), filter: none, now: now)
                == "No sagas matching --owner nobody.\n")
    }

    @Test(
        "list filters",
        arguments: [
            ("suspended", ["order-fulfillment/o-1004"]),
            ("active stuck 15m", ["order-fulfillment/o-1004", "order-fulfillment/o-1009"]),
            (
                "workflow step reserve",
                [
                    "order-fulfillment/o-1002", "order-fulfillment/o-1006", "order-fulfillment/o-1010",
                    "order-fulfillment/o-1005",
                ]
            ),
            ("owner worker-b", ["order-fulfillment/o-1004"]),
            (
                "since 1m",
                ["returns/o-1010", "order-fulfillment/o-1010", "order-fulfillment/o-1005", "order-fulfillment/o-1008"]
            ),
            ("newest first, 2", ["order-fulfillment/o-1008", "order-fulfillment/o-1005"]),
            ("step without workflow", ["returns/o-1010"]),
        ])
    func listFilters(name: String, expected: [String]) throws {
        let filter = FixtureFile.filter {
            switch name {
            case "suspended": $0.statuses = [.suspended]
            case "active stuck 15m":
                $0.statuses = [.running, .compensating, .suspended]
                $0.stuckFor = .seconds(900)
            case "workflow step reserve":
                $0.workflow = "order-fulfillment"
                $0.step = "reserve"
            case "owner worker-b": $0.owner = "worker-b"
            case "since 1m": $0.since = Fixture.at(-60)
            case "newest first, 2":
                $0.newestFirst = true
                $0.limit = 2
            default: $0.step = "authorize"
            }
        }
        #expect(try database.list(filter, now: now).rows.map(\.key.description) == expected)
    }

    @Test("list --json shape")
    func listShape() throws {
        let filter = FixtureFile.filter()
        #expect(
            shape(ListView.json(try database.list(filter, now: now), filter: filter, now: now))
                == #"""
                .: object
                .filter: object
                .filter.limit: number
                .filter.newestFirst: boolean
                .filter.owner: null
                .filter.since: null
                .filter.statuses: array
                .filter.step: null
                .filter.stuckForMs: null
                .filter.workflow: null
                .hasMore: boolean
                .now: string
                .sagas: array
                .sagas[]: object
                .sagas[].ageMs: number
                .sagas[].currentStep: null|string
                .sagas[].definitionHash: string
                .sagas[].failureCode: null|string
                .sagas[].id: string
                .sagas[].idleMs: number
                .sagas[].owner: string
                .sagas[].startedAt: string
                .sagas[].status: string
                .sagas[].updatedAt: string
                .sagas[].version: number
                .sagas[].workflow: string

                """#)
    }
}
