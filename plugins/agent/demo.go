package agent

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DemoServer returns the MCP server of `switchyard mcp-demo`: three
// harmless tools whose answers are computed from their arguments (the
// same arguments, the same answer), for the example config and tests.
//
//   - get_weather {city}: a made-up report for the city.
//   - add {a, b}: the sum of two numbers.
//   - lookup_order {order_id}: a made-up order; an id that is not 1 to 32
//     letters, digits and '-' is an isError result.
func DemoServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "switchyard-mcp-demo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "get_weather",
		Title:       "Weather",
		Description: "Current weather for a city (demo data, computed from the city's name: not a forecast).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, demoWeather)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "add",
		Title:       "Add",
		Description: "Adds two numbers.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, demoAdd)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "lookup_order",
		Title:       "Order status",
		Description: "Status of an order by its id, such as A-1001 (demo data).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, demoOrder)
	return s
}

type weatherIn struct {
	City string `json:"city" jsonschema:"the city, such as Paris"`
}

type weatherOut struct {
	City       string  `json:"city"`
	Conditions string  `json:"conditions"`
	TempC      float64 `json:"temperature_c"`
	Humidity   int     `json:"humidity_percent"`
	WindKmh    int     `json:"wind_kmh"`
}

var demoConditions = []string{"sunny", "partly cloudy", "overcast", "light rain", "showers", "fog", "windy"}

func demoHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(strings.TrimSpace(s))))
	return h.Sum64()
}

func demoWeather(_ context.Context, _ *mcp.CallToolRequest, in weatherIn) (*mcp.CallToolResult, weatherOut, error) {
	city := strings.TrimSpace(in.City)
	if city == "" {
		return errorResult("city is required, such as \"Paris\""), weatherOut{}, nil
	}
	h := demoHash(city)
	out := weatherOut{
		City:       city,
		Conditions: demoConditions[h%uint64(len(demoConditions))],
		TempC:      float64(int(h>>8%400))/10 - 5, // -5.0 to 34.9
		Humidity:   20 + int(h>>20%75),
		WindKmh:    int(h >> 32 % 50),
	}
	if out.TempC < 1 && h>>44%2 == 0 {
		out.Conditions = "snow"
	}
	text := fmt.Sprintf("Weather in %s: %s, %.1f °C, humidity %d%%, wind %d km/h (demo data).",
		out.City, out.Conditions, out.TempC, out.Humidity, out.WindKmh)
	return textResult(text), out, nil
}

type addIn struct {
	A float64 `json:"a" jsonschema:"the first number"`
	B float64 `json:"b" jsonschema:"the second number"`
}

type addOut struct {
	Sum float64 `json:"sum"`
}

func demoAdd(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
	sum := in.A + in.B
	return textResult(fmt.Sprintf("%v + %v = %v", in.A, in.B, sum)), addOut{Sum: sum}, nil
}

type orderIn struct {
	OrderID string `json:"order_id" jsonschema:"the order's id, such as A-1001"`
}

type orderOut struct {
	OrderID string  `json:"order_id"`
	Status  string  `json:"status"`
	Items   int     `json:"items"`
	Total   float64 `json:"total_eur"`
	Carrier string  `json:"carrier,omitempty"`
}

var demoStatuses = []string{"processing", "shipped", "shipped", "delivered", "delivered", "cancelled"}
var demoCarriers = []string{"DHL", "UPS", "La Poste", "GLS"}

func demoOrder(_ context.Context, _ *mcp.CallToolRequest, in orderIn) (*mcp.CallToolResult, orderOut, error) {
	id := strings.TrimSpace(in.OrderID)
	if !demoOrderID(id) {
		return errorResult(fmt.Sprintf("no order %q: an order id is 1 to 32 letters, digits and '-', such as A-1001", in.OrderID)), orderOut{}, nil
	}
	h := demoHash(id)
	out := orderOut{
		OrderID: strings.ToUpper(id),
		Status:  demoStatuses[h%uint64(len(demoStatuses))],
		Items:   1 + int(h>>8%5),
		Total:   float64(500+int(h>>16%20000)) / 100,
	}
	text := fmt.Sprintf("Order %s: %s, %d item(s), total %.2f EUR", out.OrderID, out.Status, out.Items, out.Total)
	if out.Status == "shipped" || out.Status == "delivered" {
		out.Carrier = demoCarriers[h>>40%uint64(len(demoCarriers))]
		text += ", carrier " + out.Carrier
	}
	return textResult(text + " (demo data)."), out, nil
}

func demoOrderID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func errorResult(text string) *mcp.CallToolResult {
	r := textResult(text)
	r.IsError = true
	return r
}
