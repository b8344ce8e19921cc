#!/usr/bin/env ruby
# Roman: write a number (1 to 3999) in Roman numerals (Ruby, stdlib only).
#
# Job:     {"class":"Roman","args":[1994]}   result {"roman":"MCMXCIV"}
# By hand: echo '[1994]' | ./handlers/Roman.rb
#
# The Resque job it replaces would be:
#   class Roman; @queue = :default; def self.perform(number) ... end; end
require "json"

# Result and failure: one JSON line each on the descriptor resqued names in
# RESQUE_RESULT_FD (3); on stdout when run by hand. (Do not just test whether
# fd 3 is open: without resqued, Ruby itself uses fd 3 internally.)
fd = ENV["RESQUE_RESULT_FD"]
REPORT = fd ? IO.new(Integer(fd), "w").tap { |io| io.sync = true } : $stdout

NUMERALS = { 1000 => "M", 900 => "CM", 500 => "D", 400 => "CD", 100 => "C", 90 => "XC",
             50 => "L", 40 => "XL", 10 => "X", 9 => "IX", 5 => "V", 4 => "IV", 1 => "I" }.freeze

def perform(number)
  unless number.is_a?(Integer) && number.between?(1, 3999)
    raise ArgumentError, "args must be [number] with 1 <= number <= 3999, got #{number.inspect[0, 100]}"
  end

  NUMERALS.reduce("") do |roman, (value, letters)|
    count, number = number.divmod(value)
    roman + letters * count
  end
end

begin
  args = JSON.parse($stdin.read)
  REPORT.puts({ result: { roman: perform(*args) } }.to_json)
rescue StandardError => e # bad args, JSON::ParserError
  warn "Roman: #{e.message}"
  # Exactly what Resque's failure backend records for a Ruby job.
  REPORT.puts({ exception: e.class.name, error: e.message, backtrace: e.backtrace }.to_json)
  exit 1
end
