package erb

import "strings"

type erbTag struct {
	kind byte // '=', '#', ' ' (code), 't' (text)
	text string
	line int // template line where the tag (or text) starts
}

func scanERB(src string) []erbTag {
	var tags []erbTag
	line := 1
	var text strings.Builder
	textLine := 1
	flush := func() {
		if text.Len() > 0 {
			tags = append(tags, erbTag{kind: 't', text: text.String(), line: textLine})
			text.Reset()
		}
	}
	i := 0
	for i < len(src) {
		if strings.HasPrefix(src[i:], "<%%") {
			if text.Len() == 0 {
				textLine = line
			}
			text.WriteString("<%")
			i += 3
			continue
		}
		if strings.HasPrefix(src[i:], "<%") {
			j := i + 2
			kind := byte(' ')
			if j < len(src) && src[j] == '-' {
				// <%- strips the indentation before the tag on its line.
				t := text.String()
				k := strings.LastIndexByte(t, '\n')
				if strings.TrimLeft(t[k+1:], " \t") == "" {
					text.Reset()
					text.WriteString(t[:k+1])
				}
				j++
			}
			if j < len(src) && (src[j] == '=' || src[j] == '#') {
				kind = src[j]
				j++
			}
			end := strings.Index(src[j:], "%>")
			if end < 0 {
				text.WriteString(src[i:])
				break
			}
			body := src[j : j+end]
			next := j + end + 2
			trim := strings.HasSuffix(body, "-")
			if trim {
				body = body[:len(body)-1]
			}
			flush()
			tags = append(tags, erbTag{kind: kind, text: body, line: line})
			line += strings.Count(src[i:next], "\n")
			i = next
			if trim {
				if strings.HasPrefix(src[i:], "\r\n") {
					i += 2
					line++
				} else if strings.HasPrefix(src[i:], "\n") {
					i++
					line++
				}
			}
			textLine = line
			continue
		}
		if text.Len() == 0 {
			textLine = line
		}
		if src[i] == '\n' {
			line++
		}
		text.WriteByte(src[i])
		i++
	}
	flush()
	return tags
}
