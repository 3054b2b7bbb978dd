// Package web serves everything Hearth answers on its one port: the
// ElasticHosts text/JSON API, the dashboard, the console websockets and the
// health check.
package web
