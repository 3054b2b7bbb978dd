// Package eh is the ElasticHosts wire format and key schema: it parses request
// bodies (KEY VALUE text or JSON, decided by content), renders responses (text
// properties, blocks and lists, or typed JSON), writes errors with their
// X-Elastic-Error word, parses sizes, and validates and normalises the
// properties of servers, drives and resources for both the EH-1 and EH-2
// dialects. It is pure: no storage, no routing, no guests.
package eh
