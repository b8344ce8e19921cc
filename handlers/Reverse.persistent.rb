#!/usr/bin/env ruby
# Reverse: a text backwards, as a persistent handler (Ruby, stdlib only).
#
# One process serves many jobs: each job is one JSON line on stdin, and each
# answer one "done" line on the descriptor in RESQUE_RESULT_FD (3).
#
# Job:     {"class":"Reverse","args":["abc"]}   result {"text":"cba"}
# By hand: echo '{"args":["abc"]}' | ./handlers/Reverse.persistent.rb
require "json"

# Use the variable, not a check whether fd 3 is open: without resqued, Ruby
# uses fd 3 itself. sync flushes every line (IO.new ignores a sync: option).
fd = ENV["RESQUE_RESULT_FD"]
REPORT = fd ? IO.new(Integer(fd), "w") : $stdout
REPORT.sync = $stdout.sync = true

def perform(text)
  raise ArgumentError, "args must be [\"some text\"], got #{text.inspect[0, 100]}" unless text.is_a?(String)

  { text: text.reverse }
end

$stdin.each_line do |line| # one job per line; EOF means exit
  REPORT.puts({ done: "ok", result: perform(*JSON.parse(line)["args"]) }.to_json)
rescue StandardError => e # the job fails, the process carries on
  warn "Reverse: #{e.message}"
  REPORT.puts({ done: "failed", exception: e.class.name, error: e.message, backtrace: e.backtrace }.to_json)
end
