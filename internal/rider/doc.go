// Package rider owns ride requests: the station, arrival time, destination
// area and party size of a rider, and the request status.
package rider
