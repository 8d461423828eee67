import Testing

@testable import WaybillWorker
