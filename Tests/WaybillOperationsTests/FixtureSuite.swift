import SagaEngine
import WaybillOperations

/// A suite that reads the fixture file at the fixture's fixed `now`. Swift Testing makes a suite value per test, so
/// each test builds its own file in `init` and nothing is shared between tests.
protocol FixtureSuite {
    /// The fixture file this test reads.
    var fixture: FixtureFile { get }
}

extension FixtureSuite {
    /// The read-only view of the fixture file.
    var database: SagaInspector { fixture.database }

    /// The fixture's `now`, which every query and view of these suites is given.
    var now: Timestamp { Fixture.now }
}
