// Package storage keeps Hearth's state: the SQLite database (users, servers,
// drives, resources, leases, events) and the sparse raw image file behind each
// drive. It is the only package that touches DATA/hearth.db or DATA/drives.
package storage
