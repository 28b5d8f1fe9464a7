module k8s-runner.local/node-tools

go 1.26
