// The helm the chart is linted, rendered and installed with (hack/helm-binary.py builds it).
// Nothing but this file and go.sum lives here, so no other dependency moves its version.
// A new version: `go mod edit -require=helm.sh/helm/v4@vX.Y.Z` here, `rm go.sum`, then
// `GOFLAGS=-mod=mod go list -deps helm.sh/helm/v4/cmd/helm >/dev/null` (records go.sum).
module gitjob-webhook/tools/helm

go 1.26.0

require helm.sh/helm/v4 v4.3.1
